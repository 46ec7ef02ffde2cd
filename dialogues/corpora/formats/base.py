"""What every export format shares: the export options, the protocol a format implements, and the helpers that
turn a dialogue into training records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from dialogues.corpora.data import DialogueData


@dataclass(frozen=True)
class ExportOptions:
    corrections: str = "apply"  # "apply": a correction replaces the text and later histories; "cut": stop before it
    exclude_human_turns: bool = True  # no record for an action a person typed (it stays in the histories)
    llm_calls: bool = False  # full-fidelity JSONL: include every LLM call


class Lines(Protocol):
    seen: set[str]  # what a format already wrote to this file (e.g. tasks), for its own bookkeeping

    def write(self, record: dict[str, Any]) -> None: ...


class Format(Protocol):
    name: str
    title: str
    description: str
    files: tuple[str, ...]

    def write(self, dialogue: DialogueData, out: dict[str, Lines], options: ExportOptions) -> None: ...

    def dataset_info(self) -> dict[str, Any]: ...


def action_json(action_type: str, argument: str) -> str:
    """An action as the agent outputs it (the record's output)."""
    return json.dumps({"action_type": action_type, "argument": argument}, ensure_ascii=False)


def trainable_turns(dialogue: DialogueData, options: ExportOptions) -> list[Any]:
    """The turns that become training records: every agent action (leave included), without the ones a person
    typed (if asked), and, with corrections="cut", only those before the first corrected turn. A side whose goal is
    unknown (a task rebuilt from an imported corpus that holds only the other side's prompts) gives no records:
    its prompt would have to invent the goal."""
    turns = [t for t in dialogue.turns if dialogue.spec.goals[t.speaker]]
    if options.corrections == "cut":
        first = next((t.index for t in turns if t.corrected is not None), None)
        if first is not None:
            turns = [t for t in turns if t.index < first]
    if options.exclude_human_turns:
        turns = [t for t in turns if not t.human]
    return turns
