"""Chat formats, one conversation per agent perspective: the agent's view of the task as the system message, the
other agent's actions as user turns, its own actions (the action JSON) as assistant turns. ShareGPT
(`from`/`value`) and OpenAI messages (`role`/`content`), each with its LLaMA-Factory `dataset_info.json` entry.

Turns a person typed are user-side context only when they are the other agent's; a perspective whose own turn was
typed by a person is cut before that turn (when human turns are excluded), so no assistant message is a person's.
"""

from __future__ import annotations

from typing import Any

from dialogues.corpora.data import DialogueData
from dialogues.corpora.formats.base import ExportOptions, Lines, action_json, trainable_turns
from dialogues.engine.context import agent_context

OPENING = "The conversation begins. You speak first."


def conversation(dialogue: DialogueData, speaker: int, options: ExportOptions) -> list[tuple[str, str]]:
    """(role, text) pairs: system, then user / assistant alternating, ending with the assistant."""
    allowed = {t.index for t in trainable_turns(dialogue, options)}
    names = dialogue.spec.names
    messages: list[tuple[str, str]] = [("system", agent_context(dialogue.spec, speaker))]
    pending: list[str] = []
    for turn in dialogue.turns:
        if options.corrections == "cut" and turn.corrected is not None:
            break
        if turn.speaker != speaker:
            pending.append(f"Turn #{turn.index}: {turn.action().transcript_line(names[turn.speaker])}")
            continue
        if turn.index not in allowed:
            break  # a person played this side here: the perspective ends before it
        messages.append(("user", "\n".join(pending) if pending else OPENING))
        messages.append(("assistant", action_json(turn.action_type, turn.text)))
        pending = []
    return messages if len(messages) > 1 else []


class Chat:
    def __init__(self, name: str, title: str, file: str, key: str, tags: dict[str, str], roles: dict[str, str]):
        self.name, self.title, self.file, self.key, self.tags, self.roles = name, title, file, key, tags, roles
        self.files = (file,)
        self.description = "One conversation per agent: its view as system, the other's actions as user turns."

    def write(self, dialogue: DialogueData, out: dict[str, Lines], options: ExportOptions) -> None:
        for speaker in (0, 1):
            messages = conversation(dialogue, speaker, options)
            if not messages:
                continue
            role_tag, content_tag = self.tags["role_tag"], self.tags["content_tag"]
            out[self.file].write(
                {
                    self.key: [{role_tag: self.roles[role], content_tag: text} for role, text in messages],
                    "dialogue": dialogue.key,
                    "agent": dialogue.spec.names[speaker],
                }
            )

    def dataset_info(self) -> dict[str, Any]:
        return {
            self.file.removesuffix(".jsonl"): {
                "file_name": self.file,
                "formatting": "sharegpt",
                "columns": {"messages": self.key},
                "tags": self.tags,
            }
        }


SHAREGPT = Chat(
    "sharegpt",
    "Chat, ShareGPT (from / value)",
    "sotopia_omega_sharegpt.jsonl",
    "conversations",
    {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt", "system_tag": "system"},
    {"system": "system", "user": "human", "assistant": "gpt"},
)
OPENAI = Chat(
    "openai",
    "Chat, OpenAI messages (role / content)",
    "sotopia_omega_openai.jsonl",
    "messages",
    {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
     "system_tag": "system"},
    {"system": "system", "user": "user", "assistant": "assistant"},
)  # fmt: skip
