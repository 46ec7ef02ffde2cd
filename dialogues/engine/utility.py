"""Utility functions of the negotiation workflow (paper Eq. 1), computed in code from the model's matters."""

from __future__ import annotations

import math
from typing import Any

from .actions import UnusableAnswer
from .config import UtilityForm


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise UnusableAnswer(f"{name} is not a number: {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError as exc:
            raise UnusableAnswer(f"{name} is not a number: {value!r}") from exc
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise UnusableAnswer(f"{name} is not a number: {value!r}")
    if not low <= value <= high:
        raise UnusableAnswer(f"{name} {value} is outside [{low:g}, {high:g}]")
    return float(value)


def parse_utility(data: Any, form: UtilityForm = UtilityForm.PAPER) -> dict[str, Any]:
    """Check the model's matters and compute U. Returns {"form", "matters", "U", "claimed_U"}.

    Paper form: each matter has a value u in [0, 100], a weight w and a ratio r in [0, 1];
    U = (1/n) Σ w·r·u. Script form: each matter has a value and a coefficient; U = Σ coefficient·value.
    Whatever U the model states is kept as `claimed_U` for comparison, never used.
    """
    if not isinstance(data, dict):
        raise UnusableAnswer("utility is not an object")
    matters = data.get("matters")
    if not isinstance(matters, list) or not matters:
        raise UnusableAnswer("utility has no list of matters")
    if len(matters) > 20:
        raise UnusableAnswer(f"utility has {len(matters)} matters; at most 20")
    clean = []
    for i, matter in enumerate(matters):
        if not isinstance(matter, dict):
            raise UnusableAnswer(f"matter {i + 1} is not an object")
        description = matter.get("matter") or matter.get("description")
        if not isinstance(description, str) or not description.strip():
            raise UnusableAnswer(f"matter {i + 1} has no description")
        if form == UtilityForm.PAPER:
            clean.append(
                {
                    "matter": description.strip(),
                    "value": _number(matter.get("value"), f"matter {i + 1} value", 0, 100),
                    "weight": _number(matter.get("weight"), f"matter {i + 1} weight", 0, 1),
                    "ratio": _number(matter.get("ratio"), f"matter {i + 1} ratio", 0, 1),
                }
            )
        else:
            clean.append(
                {
                    "matter": description.strip(),
                    "value": _number(matter.get("value"), f"matter {i + 1} value", -1e6, 1e6),
                    "coefficient": _number(matter.get("coefficient"), f"matter {i + 1} coefficient", -1e3, 1e3),
                }
            )
    claimed = data.get("utility", data.get("U"))
    return {
        "form": form.value,
        "matters": clean,
        "U": utility_value(clean, form),
        "claimed_U": claimed if isinstance(claimed, int | float | str) else None,
    }


NON_EMPTY: dict[str, Any] = {"type": "string", "minLength": 1}  # what the parsers require of a text field

MATTER_FIELDS = {
    UtilityForm.PAPER: (
        '- "matter": a short description;\n'
        '- "value": how much the matter is worth, from 0 to 100;\n'
        '- "weight": how important it is among the matters, from 0 to 1;\n'
        '- "ratio": the share of it expected to be obtained in the end, from 0 to 1.',
        '{"matter": "", "value": 0, "weight": 0.0, "ratio": 0.0}',
    ),
    UtilityForm.SCRIPT: (
        '- "matter": a short description;\n'
        '- "value": the expected value of the matter (a number);\n'
        '- "coefficient": how much it counts toward the overall utility (a number).',
        '{"matter": "", "value": 0.0, "coefficient": 0.0}',
    ),
}


def matter_schema(form: UtilityForm = UtilityForm.PAPER) -> dict[str, Any]:
    """One matter's JSON schema. A description may not be empty (a grammar enforces that); ranges are checked by
    parse_utility: servers differ in enforcing them (llama.cpp's grammars enforce none for numbers)."""
    numbers = ("value", "weight", "ratio") if form == UtilityForm.PAPER else ("value", "coefficient")
    return {
        "type": "object",
        "properties": {"matter": NON_EMPTY, **{name: {"type": "number"} for name in numbers}},
        "required": ["matter", *numbers],
    }


def utility_schema(form: UtilityForm = UtilityForm.PAPER) -> dict[str, Any]:
    """The answer of a utility step (own or other's): a thought, then the matters."""
    return {
        "type": "object",
        "properties": {
            "thought": {"type": "string"},
            "matters": {"type": "array", "items": matter_schema(form), "minItems": 1, "maxItems": 20},
        },
        "required": ["thought", "matters"],
    }


def update_schema(form: UtilityForm = UtilityForm.PAPER) -> dict[str, Any]:
    """The answer of the update step: both utilities again, and the draft."""
    matters = {"type": "array", "items": matter_schema(form), "minItems": 1, "maxItems": 20}
    return {
        "type": "object",
        "properties": {
            "thought": {"type": "string"},
            "own_matters": matters,
            "other_matters": matters,
            "draft": NON_EMPTY,
        },
        "required": ["thought", "own_matters", "other_matters", "draft"],
    }


def utility_value(matters: list[dict[str, Any]], form: UtilityForm = UtilityForm.PAPER) -> float:
    if not matters:
        return 0.0
    if form == UtilityForm.PAPER:
        total = sum(m["weight"] * m["ratio"] * m["value"] for m in matters)
        return round(total / len(matters), 4)
    return round(sum(m["coefficient"] * m["value"] for m in matters), 4)


def utility_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed between two utilities of the same agent, matter by matter (for the inspection pages)."""
    old = {m["matter"]: m for m in (before or {}).get("matters", [])}
    new = {m["matter"]: m for m in after.get("matters", [])}
    changes = []
    for name, matter in new.items():
        if name not in old:
            changes.append({"matter": name, "change": "added"})
        elif any(matter.get(k) != old[name].get(k) for k in matter if k != "matter"):
            fields = {
                k: [old[name].get(k), matter[k]] for k in matter if k != "matter" and matter[k] != old[name].get(k)
            }
            changes.append({"matter": name, "change": "changed", "fields": fields})
    changes.extend({"matter": name, "change": "removed"} for name in old if name not in new)
    return changes
