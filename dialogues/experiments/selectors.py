"""Reads for experiments: what a fork changed, whether a dialogue waits for a person, two dialogues aligned turn by
turn, and the outcome distributions of a counterfactual batch. Prepared for templates, which only lay it out."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from dialogues.engine.state import Proposal
from dialogues.inspection.selectors import TurnView, dialogue_get, turn_views
from dialogues.runs.models import Dialogue, DialogueStatus, Run, Turn

CHANGE_LABELS = {
    "seed": "seed",
    "model": "served model",
    "human_side": "played by a person",
    "force_strategy": "strategy from here",
    "disabled_strategies": "disabled strategies",
    "nsi_goal_c_max": "NSI if goal_c ≤",
    "goal_p_high": "goal_p threshold",
    "ssi_goal_c_max": "SSI if goal_c <",
    "judge_samples": "judge samples",
    "max_turns": "turn limit",
    "sampling": "sampling",
}


def _shown(value: Any) -> str:
    if value in ("", None, [], ()):
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def change_rows(dialogue: Dialogue) -> list[dict[str, str]]:
    """What a fork changed, as (setting, the parent's value, the fork's value). The fork run's configuration is
    the parent's, so the old values are read there."""
    changes, run = dialogue.changes or {}, dialogue.run
    names = (dialogue.task.agent1.full_name, dialogue.task.agent2.full_name)
    rows = []
    if "seed" in changes:
        rows.append({"name": CHANGE_LABELS["seed"], "before": _shown(run.seed), "after": _shown(changes["seed"])})
    if "model" in changes:
        rows.append({"name": CHANGE_LABELS["model"], "before": _shown(run.model), "after": changes["model"]})
    for key, value in (changes.get("config") or {}).items():
        before = run.config.get(key)
        if key == "sampling":
            before = {k: (run.config.get("sampling") or {}).get(k) for k in value}
        rows.append({"name": CHANGE_LABELS.get(key, key), "before": _shown(before), "after": _shown(value)})
    if changes.get("human_side") is not None:
        rows.append({"name": CHANGE_LABELS["human_side"], "before": "—", "after": names[changes["human_side"]]})
    return rows


# --- two dialogues side by side ---------------------------------------------------------------------------


def _same(a: Turn, b: Turn) -> bool:
    return (a.speaker, a.action_type, a.argument) == (b.speaker, b.action_type, b.argument)


def fork_point(a: Dialogue, b: Dialogue, views_a: list[TurnView], views_b: list[TurnView]) -> int | None:
    """The last turn the two share: the recorded fork turn when one is the other's fork (or both are forks of
    one parent at one turn), else the end of their identical prefix; None when they share nothing."""
    if b.parent_id == a.pk and b.fork_turn is not None:
        return b.fork_turn
    if a.parent_id == b.pk and a.fork_turn is not None:
        return a.fork_turn
    if a.parent_id and a.parent_id == b.parent_id and a.fork_turn == b.fork_turn and a.fork_turn is not None:
        return a.fork_turn
    shared = -1
    for va, vb in zip(views_a, views_b, strict=False):
        if not _same(va.turn, vb.turn):
            break
        shared = va.index
    return shared if shared >= 0 else None


@dataclass
class CompareRow:
    index: int
    a: TurnView | None
    b: TurnView | None

    @property
    def branch_differs(self) -> bool:
        return self.a is not None and self.b is not None and self.a.turn.branch != self.b.turn.branch

    @property
    def text_differs(self) -> bool:
        return self.a is None or self.b is None or not _same(self.a.turn, self.b.turn)


@dataclass
class Comparison:
    a: Dialogue
    b: Dialogue
    fork_at: int | None
    shared: list[CompareRow]  # turns 0..fork_at
    rows: list[CompareRow]  # from the turn after the fork point, aligned by turn index
    figure: str

    @property
    def branch_differences(self) -> int:
        return sum(1 for row in self.rows if row.branch_differs)


def compare(a_id: int, b_id: int) -> Comparison:
    """Two dialogues aligned turn by turn from the fork point, with both rating series on one chart."""
    from dialogues.inspection.charts import compare_chart

    a, b = dialogue_get(a_id), dialogue_get(b_id)
    views_a, views_b = turn_views(a), turn_views(b)
    at = fork_point(a, b, views_a, views_b)
    by_a, by_b = {v.index: v for v in views_a}, {v.index: v for v in views_b}
    last = max([*by_a, *by_b], default=-1)
    rows = [CompareRow(i, by_a.get(i), by_b.get(i)) for i in range(last + 1)]
    cut = -1 if at is None else at
    figure = compare_chart(views_a, views_b, fork_at=at, labels=(f"A #{a.pk}", f"B #{b.pk}"))
    return Comparison(a, b, at, rows[: cut + 1], rows[cut + 1 :], json.dumps(figure))


# --- a counterfactual batch -------------------------------------------------------------------------------


def turns_to_agreement(turns: list[tuple[int, str, str]], end_reason: str) -> int | None:
    """Turns until the agents agreed: up to and including the first confirm_proposal of the negotiation workflow,
    or, without one, all turns when the dialogue ended with both agents leaving. None: no agreement (the turn
    limit, or `none` actions, ended it). `turns` are (index, proposal, action_type) in order."""
    for index, proposal, _ in turns:
        if proposal == Proposal.CONFIRM.value:
            return index + 1
    if end_reason == "both_left":
        return len(turns)
    return None


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def _outcome(dialogue: Dialogue, turns: list[tuple[int, str, str]]) -> dict[str, Any]:
    return {
        "dialogue": dialogue,
        "goal_c": dialogue.final_goal_c,
        "agreement": turns_to_agreement(turns, dialogue.end_reason) if dialogue.status == "finished" else None,
        "nsi": dialogue.nsi_used,
    }


def batch_summary(run: Run) -> dict[str, Any] | None:
    """For a fork run: its parent, each setting's forks with final goal_c and turns to agreement, their
    statistics and distribution charts. None for other runs."""
    from dialogues.inspection.charts import distribution_chart

    if not run.is_fork:
        return None
    forks = list(run.dialogues.select_related("task__agent1", "task__agent2", "parent").order_by("arm", "attempt"))
    if not forks:
        return None
    ids = [f.pk for f in forks] + ([forks[0].parent_id] if forks[0].parent_id else [])
    turns: dict[int, list[tuple[int, str, str]]] = {pk: [] for pk in ids}
    for dialogue_id, index, proposal, action in (
        Turn.objects.filter(dialogue_id__in=ids)
        .order_by("dialogue_id", "index")
        .values_list("dialogue_id", "index", "proposal", "action_type")
    ):
        turns[dialogue_id].append((index, proposal, action))
    parent = forks[0].parent
    parent_outcome = _outcome(parent, turns[parent.pk]) if parent else None
    arms = []
    for label in sorted({f.arm for f in forks}):
        members = [f for f in forks if f.arm == label]
        outcomes = [_outcome(f, turns[f.pk]) for f in members]
        finished = [o for o in outcomes if o["dialogue"].status == DialogueStatus.FINISHED]
        arms.append(
            {
                "label": f"setting {label}" if label else "forks",
                "changes": change_rows(members[0]),
                "outcomes": outcomes,
                "finished": len(finished),
                "goal_c": _stats([o["goal_c"] for o in finished if o["goal_c"] is not None]),
                "agreement": _stats([o["agreement"] for o in finished if o["agreement"] is not None]),
                "no_agreement": sum(1 for o in finished if o["agreement"] is None),
                "nsi": sum(1 for o in finished if o["nsi"]),
            }
        )

    def values(key: str) -> list[tuple[str, list[float]]]:
        done = DialogueStatus.FINISHED
        return [
            (arm["label"], [o[key] for o in arm["outcomes"] if o["dialogue"].status == done and o[key] is not None])
            for arm in arms
        ]

    goal_chart = distribution_chart(
        values("goal_c"),
        parent=parent_outcome["goal_c"] if parent_outcome else None,
        title="final goal_c",
        y_range=[0, 10.2],
    )
    agreement_chart = distribution_chart(
        values("agreement"),
        parent=parent_outcome["agreement"] if parent_outcome else None,
        title="turns to agreement",
    )
    return {
        "parent": parent,
        "parent_outcome": parent_outcome,
        "fork_turn": forks[0].fork_turn,
        "arms": arms,
        "goal_figure": json.dumps(goal_chart),
        "agreement_figure": json.dumps(agreement_chart),
        "batch": len(arms) > 1 or len(forks) > 1,
    }
