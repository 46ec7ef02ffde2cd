"""Valid model answers for each purpose, for scripting the test LLM server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any


def action(text: str = "I see your point, but I still want this.", action_type: str = "speak") -> str:
    return json.dumps({"action_type": action_type, "argument": text})


def sample(s1: int, s2: int, s3: int, s4: int, s5: int = 1) -> str:
    return json.dumps(
        {
            f"step{i}": {"analysis": f"analysis of step {i}", "score": score}
            for i, score in enumerate((s1, s2, s3, s4, s5), start=1)
        }
    )


def samples(*scores: tuple[int, ...]) -> list[str]:
    return [sample(*s) for s in scores]


def uniform(goal_c: int, goal_p: int, n: int, *, end: bool = False) -> list[str]:
    """n samples that all give these scores; with end, the first votes to end."""
    return [sample(goal_c, goal_c, goal_p, goal_p, 0 if end and i == 0 else 1) for i in range(n)]


def utility(*values: tuple[str, float, float, float]) -> str:
    matters = values or (("the main point", 80, 0.9, 0.5), ("the relationship", 60, 0.5, 0.8))
    return json.dumps(
        {
            "thought": "thinking",
            "matters": [{"matter": m, "value": v, "weight": w, "ratio": r} for m, v, w, r in matters],
        }
    )


def update(draft: str = "adjust the details") -> str:
    own = json.loads(utility())["matters"]
    return json.dumps({"thought": "t", "own_matters": own, "other_matters": own, "draft": draft})


def proposal(kind: str, text: str = "Here is what I propose.") -> str:
    return json.dumps({"proposal_type": kind, "action_type": "speak", "argument": text})


def rated_turn(body: dict[str, Any]) -> int:
    """The last turn in a rating prompt's history."""
    prompt = body["messages"][0]["content"]
    turns = [int(t) for t in re.findall(r"^Turn #(\d+)$", prompt, flags=re.M)]
    return turns[-1] if turns else -1


def allowed_proposals(body: dict[str, Any]) -> list[str]:
    prompt = body["messages"][0]["content"]
    return re.findall(r"(present_proposal|revise_proposal|confirm_proposal)", prompt.split("Your draft")[-1])


def responder(
    rating: Callable[[int, int], list[str]],
    *,
    proposals: Iterator[str] | None = None,
    act: Callable[[int], str] | None = None,
) -> Callable[[str, dict[str, Any]], Any]:
    """A responder for the test server: `rating(turn, n)` gives the samples after a turn; update-step
    proposals come from `proposals` (default: revise, then confirm); `act(turn)` gives native actions."""
    updates = proposals or iter(["revise_proposal", "confirm_proposal"])

    def answer(purpose: str, body: dict[str, Any]) -> Any:
        n = int(body.get("n") or 1)
        if purpose == "rating":
            return rating(rated_turn(body), n)
        prompt = body["messages"][0]["content"]
        turn = int(re.findall(r"You are at Turn #(\d+)", prompt)[-1]) if "You are at Turn #" in prompt else -1
        if purpose in {"action.native", "action.ssi"}:
            return act(turn) if act else action(f"turn {turn} says something ({purpose})")
        if purpose in {"nsi.own_utility", "nsi.other_utility"}:
            return utility()
        if purpose in {"nsi.interests", "nsi.difference"}:
            return action(f"draft for {purpose}")
        if purpose == "nsi.proposal_draft":
            return json.dumps({"thought": "t", "draft": "offer something outside the conflict"})
        if purpose == "nsi.update":
            return update()
        if purpose == "nsi.proposal":
            allowed = allowed_proposals(body)
            kind = allowed[0] if allowed == ["present_proposal"] else next(updates)
            return proposal(kind, f"{kind} text")
        if purpose == "nsi.style_transfer":
            return "In my own voice: " + prompt.split("written as a plain draft:\n")[1].split("\n")[0]
        if purpose == "nsi.confirm":
            return proposal("confirm_proposal", "I confirm too.")
        raise AssertionError(f"unexpected purpose {purpose}")

    return answer
