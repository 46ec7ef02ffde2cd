"""Agent actions: the five SOTOPIA action types, how they read in a transcript, and parsing model output."""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ActionType(StrEnum):
    NONE = "none"
    SPEAK = "speak"
    NON_VERBAL = "non-verbal communication"
    ACTION = "action"
    LEAVE = "leave"


@dataclass(frozen=True)
class Action:
    action_type: ActionType
    argument: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"action_type": self.action_type.value, "argument": self.argument}

    def transcript_line(self, name: str) -> str:
        """How the action reads in the history SOTOPIA shows the agents."""
        match self.action_type:
            case ActionType.SPEAK:
                return f'{name} said: "{self.argument}"'
            case ActionType.NON_VERBAL | ActionType.ACTION:
                return f"{name} [{self.action_type.value}] {self.argument}"
            case ActionType.NONE:
                return f"{name} did nothing"
            case ActionType.LEAVE:
                return f"{name} left the conversation"
        raise ValueError(self.action_type)


class UnusableAnswer(ValueError):
    """A model answer that arrived but cannot be used (not JSON, wrong keys, values out of range)."""


_FENCE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)```", re.DOTALL)


def _balanced_objects(text: str) -> list[str]:
    """Every top-level {...} span in the text, in order (braces inside strings are respected)."""
    spans, depth, start, quote, escaped = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            # an apostrophe inside a word ("don't") is not a quote of a Python-style dict
            if ch == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < len(text) and text[i + 1].isalnum():
                continue
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def parse_json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in a model answer: plain, fenced, surrounded by prose, or a single-quoted Python dict
    (as the paper's prompts ask for). Raises UnusableAnswer."""
    if text is None or not text.strip():
        raise UnusableAnswer("empty answer")
    candidates = [m.strip() for m in _FENCE.findall(text)] + [text.strip()]
    for candidate in candidates:
        for attempt in [candidate, *_balanced_objects(candidate)]:
            for loader in (json.loads, _python_literal):
                try:
                    value = loader(attempt)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    continue
                if isinstance(value, dict):
                    return value
    preview = text.strip().replace("\n", " ")[:120]
    raise UnusableAnswer(f"no JSON object in the answer: {preview!r}")


def _python_literal(text: str) -> Any:
    if len(text) > 200_000:
        raise ValueError("too long")
    with warnings.catch_warnings():  # a model's stray backslash is its text, not our code: no compiler warnings
        warnings.simplefilter("ignore", category=SyntaxWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        return ast.literal_eval(text)


def parse_action(text: str | None, *, allowed: frozenset[ActionType] | None = None) -> Action:
    data = parse_json_object(text)
    return action_from_dict(data, allowed=allowed)


def action_from_dict(data: dict[str, Any], *, allowed: frozenset[ActionType] | None = None) -> Action:
    missing = {"action_type", "argument"} - set(data)
    if missing:
        raise UnusableAnswer(f"action without {', '.join(sorted(missing))}")
    raw_type = data["action_type"]
    if not isinstance(raw_type, str):
        raise UnusableAnswer(f"action_type is not a string: {raw_type!r}")
    try:
        action_type = ActionType(raw_type.strip().lower())
    except ValueError as exc:
        raise UnusableAnswer(f"unknown action_type {raw_type!r}") from exc
    if allowed is not None and action_type not in allowed:
        raise UnusableAnswer(f"action_type {action_type.value!r} is not allowed here")
    argument = data["argument"]
    if argument is None:
        argument = ""
    if not isinstance(argument, str):
        raise UnusableAnswer(f"argument is not a string: {type(argument).__name__}")
    argument = argument.strip()
    if action_type in NEEDS_ARGUMENT and not argument:
        raise UnusableAnswer(f"empty argument for {action_type.value}")
    return Action(action_type, argument)


NEEDS_ARGUMENT = frozenset({ActionType.SPEAK, ActionType.NON_VERBAL, ActionType.ACTION})


def _action_shape(types: list[ActionType], argument: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"action_type": {"type": "string", "enum": [t.value for t in types]}, "argument": argument},
        "required": ["action_type", "argument"],
        "additionalProperties": False,
    }


# An action as the parser takes it, so that a server with a grammar (llama.cpp) enforces it: what is said or done
# has words; `none` and `leave` may have none. (An object at the root: OpenAI refuses a schema of another type.)
ACTION_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "anyOf": [
        _action_shape([t for t in ActionType if t in NEEDS_ARGUMENT], {"type": "string", "minLength": 1}),
        _action_shape([t for t in ActionType if t not in NEEDS_ARGUMENT], {"type": "string"}),
    ],
}
