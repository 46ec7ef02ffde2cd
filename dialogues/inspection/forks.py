"""Reads about forks for the dialogue and run pages: a dialogue's forks, what a fork changed, and the outcome of a
counterfactual batch (each setting's forks with their final goal_c and turns to agreement, statistics and
distribution charts). Prepared for templates, which only lay it out. Experiments (forking, comparing) builds on
these; the forks themselves are made by experiments/services.py.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from dialogues.engine.state import Proposal
from dialogues.inspection.charts import distribution_chart
from dialogues.runs.models import Dialogue, DialogueStatus, Run, Turn

CHANGE_LABELS = {
    "seed": "seed",
    "model": "served model",
    "human_side": "played by a person",
    "prompt_set": "prompt set",
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
    if changes.get("prompt_set"):
        chosen = changes["prompt_set"]
        rows.append(
            {
                "name": CHANGE_LABELS["prompt_set"],
                "before": f"{run.prompt_set_name} ({run.prompt_set_version})",
                "after": f"{chosen['name']} ({chosen['version']})",
            }
        )
    return rows


def forks_of(dialogue: Dialogue) -> list[Dialogue]:
    """The dialogue's forks, by fork run, with what their rows show."""
    return list(dialogue.forks.select_related("run", "task__agent1", "task__agent2").order_by("run_id", "attempt"))


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
