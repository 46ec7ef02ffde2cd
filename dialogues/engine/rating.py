"""Step rating (METHOD.md §2.2): n judge samples, each with five scored steps; aggregated goal_c, goal_p and
a strict termination vote."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .actions import UnusableAnswer, parse_json_object

STEPS = ("step1", "step2", "step3", "step4", "step5")
# What each score means, what goal_c and goal_p are made of, and when the samples end the dialogue: the scores
# below are computed from these, and the pages' help texts are written from them (`rating_rules`), so the two
# cannot disagree.
STEP_MEANINGS = {
    "step1": "goal now, agent 1",
    "step2": "goal now, agent 2",
    "step3": "goal later, agent 1",
    "step4": "goal later, agent 2",
    "step5": "go on? (0 = end)",
}
GOAL_C_STEPS = ("step1", "step2")
GOAL_P_STEPS = ("step3", "step4")
END_STEP, END_SCORE = "step5", 0
END_QUANTIFIER = "any"  # strict termination (METHOD.md §2.2): one sample voting to end is enough
_QUANTIFIERS = {"any": any, "all": all}


def _mean_of_steps(scores: dict[str, int], steps: tuple[str, ...]) -> float:
    return sum(scores[s] for s in steps) / len(steps)


def _formula(steps: tuple[str, ...]) -> str:
    return f"({' + '.join(steps)}) / {len(steps)}"


def rating_rules() -> dict[str, str]:
    """The rating's rules in words, from the definitions the code computes with."""
    who = {"any": "any single valid sample", "all": "every valid sample"}[END_QUANTIFIER]
    return {
        "goal_c": f"goal_c = mean over the valid samples of {_formula(GOAL_C_STEPS)}",
        "goal_p": f"goal_p = mean over the valid samples of {_formula(GOAL_P_STEPS)}",
        "end": f"the dialogue ends when {who} scores {END_STEP} = {END_SCORE} (strict termination)",
    }


def rating_rules_text() -> str:
    rules = rating_rules()
    return f"{rules['goal_c']}; {rules['goal_p']}; {rules['end']}."


@dataclass(frozen=True)
class RatingSample:
    scores: dict[str, int]
    analyses: dict[str, str]

    @property
    def goal_c(self) -> float:
        return _mean_of_steps(self.scores, GOAL_C_STEPS)

    @property
    def goal_p(self) -> float:
        return _mean_of_steps(self.scores, GOAL_P_STEPS)

    @property
    def votes_to_end(self) -> bool:
        return self.scores[END_STEP] == END_SCORE

    def as_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "analyses": self.analyses,
            "goal_c": self.goal_c,
            "goal_p": self.goal_p,
            "votes_to_end": self.votes_to_end,
        }


@dataclass(frozen=True)
class Rating:
    samples: tuple[RatingSample, ...]
    requested: int
    rejected: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # {"raw": ..., "reason": ...}
    returned: int | None = None  # answers that came back over all requests (re-asks included)

    @property
    def valid(self) -> int:
        return len(self.samples)

    @property
    def goal_c(self) -> float:
        return round(sum(s.goal_c for s in self.samples) / len(self.samples), 4)

    @property
    def goal_p(self) -> float:
        return round(sum(s.goal_p for s in self.samples) / len(self.samples), 4)

    @property
    def terminate(self) -> bool:
        """Strict (END_QUANTIFIER "any"): one sample voting to end ends the conversation."""
        return _QUANTIFIERS[END_QUANTIFIER](s.votes_to_end for s in self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": [s.as_dict() for s in self.samples],
            "rejected": list(self.rejected),
            "requested": self.requested,
            "returned": self.valid + len(self.rejected) if self.returned is None else self.returned,
            "valid": self.valid,
            "goal_c": self.goal_c,
            "goal_p": self.goal_p,
            "terminate": self.terminate,
        }


def _score(value: Any, step: str) -> int:
    if isinstance(value, bool):
        raise UnusableAnswer(f"{step} score is not a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as exc:
            raise UnusableAnswer(f"{step} score {value!r} is not a number") from exc
    if not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise UnusableAnswer(f"{step} score {value!r} is not an integer")
    value = int(value)
    high = 1 if step == "step5" else 10
    if not 0 <= value <= high:
        raise UnusableAnswer(f"{step} score {value} is outside 0–{high}")
    return value


def parse_sample(text: str | None) -> RatingSample:
    data = parse_json_object(text)
    scores, analyses = {}, {}
    for step in STEPS:
        part = data.get(step)
        if not isinstance(part, dict):
            raise UnusableAnswer(f"missing {step}")
        if "score" not in part:
            raise UnusableAnswer(f"{step} has no score")
        scores[step] = _score(part["score"], step)
        analysis = part.get("analysis", "")
        analyses[step] = analysis if isinstance(analysis, str) else str(analysis)
    return RatingSample(scores, analyses)


def score_schema(low: int, high: int) -> dict[str, Any]:
    """An integer score from low to high, also as an enum: llama-cpp-python's grammar enforces an enum but ignores
    minimum and maximum (its answers had step1 scores of 4698)."""
    return {"type": "integer", "minimum": low, "maximum": high, "enum": list(range(low, high + 1))}


RATING_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        step: {
            "type": "object",
            "properties": {
                "analysis": {"type": "string"},
                "score": score_schema(0, 1 if step == "step5" else 10),
            },
            "required": ["analysis", "score"],
        }
        for step in STEPS
    },
    "required": list(STEPS),
}
