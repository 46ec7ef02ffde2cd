"""The project's prompt texts (dialogues/prompts/*.txt), one per purpose, versioned by content hash, and the
dialogue's history as every prompt shows it.

Templates use $name placeholders (string.Template), so JSON examples in the text need no escaping. Every
prompt starts with the stable part (who the agent is, the task context) and puts what changes last, so a
server with prefix caching reuses the shared beginning.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import DialogueState

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"


@cache
def _templates(directory: Path = PROMPT_DIR) -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.txt"))}


@cache
def prompt_set_version(directory: Path = PROMPT_DIR) -> str:
    digest = hashlib.sha256()
    for name, text in _templates(directory).items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:12]


def raw(template: str) -> str:
    return _templates()[template]


def render(template: str, /, **values: object) -> str:
    """Fill a template; a missing placeholder is an error, never left in the prompt."""
    return Template(_templates()[template]).substitute({k: str(v) for k, v in values.items()})


def history_text(state: DialogueState, upto: int | None = None) -> str:
    """The turns so far (or before `upto`) as every prompt shows them: a numbered line per turn."""
    names = state.task.names
    turns = state.turns if upto is None else state.turns[:upto]
    return "".join(f"\nTurn #{t.index}\n{t.action.transcript_line(names[t.speaker])}\n" for t in turns)
