"""Reads about runs and dialogues that pages and services share: a dialogue by id (or a 404), the configuration a
dialogue runs with, the engine's state of a dialogue, and the progress of runs counted from rows."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Q, Sum
from django.http import Http404

from dialogues.engine.actions import Action, ActionType
from dialogues.engine.config import RunConfig
from dialogues.engine.state import DialogueState, NsiStep, Proposal
from dialogues.engine.state import Turn as EngineTurn
from dialogues.engine.strategy import Branch as EngineBranch
from dialogues.library.selectors import task_spec
from dialogues.runs.models import Dialogue, DialogueStatus, Run, StepRating, Turn


def _engine_turn(turn: Turn) -> EngineTurn:
    try:
        rating = turn.rating
    except StepRating.DoesNotExist:
        rating = None
    return EngineTurn(
        index=turn.index,
        speaker=turn.speaker,
        action=Action(ActionType(turn.action_type), turn.argument),
        branch=EngineBranch(turn.branch),
        forced=turn.forced,
        reason=turn.reason,
        nsi_step=NsiStep(turn.nsi_step) if turn.nsi_step else None,
        proposal=Proposal(turn.proposal) if turn.proposal else None,
        draft=turn.draft,
        own_utility=turn.own_utility,
        other_utility=turn.other_utility,
        rating=None if rating is None else rating_dict(rating),
        human=turn.human,
    )


def rating_dict(rating: StepRating) -> dict[str, Any]:
    return {
        "samples": rating.samples,
        "rejected": rating.rejected,
        "requested": rating.requested,
        "valid": rating.valid,
        "goal_c": rating.goal_c,
        "goal_p": rating.goal_p,
        "terminate": rating.terminate,
        **({"closing": True} if rating.closing else {}),
    }


def dialogue_get_or_404(pk: int) -> Dialogue:
    """The dialogue with its run and task (what every dialogue page shows), or a 404."""
    try:
        return Dialogue.objects.select_related("run", "task__scenario", "task__agent1", "task__agent2").get(pk=pk)
    except Dialogue.DoesNotExist as missing:
        raise Http404("No such dialogue.") from missing


def dialogue_config(dialogue: Dialogue) -> RunConfig:
    """The configuration a dialogue runs with: its run's, with a fork's changes on top."""
    data = dict(dialogue.run.config)
    changes = (dialogue.changes or {}).get("config") or {}
    for name, value in changes.items():
        data[name] = {**data.get(name, {}), **value} if name == "sampling" else value
    if (dialogue.changes or {}).get("model"):
        data["model"] = dialogue.changes["model"]
    return RunConfig.from_json(data)


def dialogue_state(dialogue: Dialogue) -> DialogueState:
    """The engine's view of a dialogue: task, configuration, turns with their ratings."""
    turns = Turn.objects.filter(dialogue=dialogue).select_related("rating").order_by("index")
    return DialogueState(
        task=task_spec(dialogue.task),
        config=dialogue_config(dialogue),
        turns=tuple(_engine_turn(t) for t in turns),
        seed=dialogue.seed,
        nsi_side=dialogue.nsi_side,
        meta={"hard": dialogue.task.hard, "task": dialogue.task.scenario.codename},
        human_side=dialogue.human_side,
    )


OPEN_STATUSES = (DialogueStatus.PENDING, DialogueStatus.RUNNING, DialogueStatus.PAUSED)


def runs_progress(runs: list[Run]) -> dict[int, dict[str, Any]]:
    """Each run's progress, counted from rows in four grouped queries however many runs there are: dialogues by
    status, settled tasks, turns, tokens and calls, and when its last dialogue ended."""
    ids = [run.pk for run in runs]
    dialogues = Dialogue.objects.filter(run_id__in=ids)
    by_status: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    for run_id, status, n in dialogues.values_list("run_id", "status").annotate(n=Count("id")).order_by():
        by_status[run_id][status] = n
    totals = {
        row["run_id"]: row
        for row in dialogues.values("run_id")
        .annotate(
            tokens=Sum("tokens"),
            calls=Sum("calls_count"),
            turns=Sum("turns_count"),
            kept=Count("id", filter=Q(kept=True)),
            passed=Count("id", filter=Q(filter_passed=True)),
            # a task is settled when none of its attempts is still to run (kept, failed, cancelled, out of attempts)
            unsettled=Count("task_id", filter=Q(status__in=OPEN_STATUSES), distinct=True),
            last_finished=Max("finished_at"),
        )
        .order_by()
    }
    tasks = dict(
        Run.tasks.through.objects.filter(run_id__in=ids).values_list("run_id").annotate(n=Count("id")).order_by()
    )
    progress = {}
    for run in runs:
        counts, total = by_status[run.pk], totals.get(run.pk, {})
        task_count = tasks.get(run.pk, 0)
        progress[run.pk] = {
            "tasks": task_count,
            "settled": task_count - (total.get("unsettled") or 0),
            "attempts": sum(counts.values()),
            **{status.value: counts.get(status, 0) for status in DialogueStatus},
            "kept": total.get("kept") or 0,
            "passed": total.get("passed") or 0,
            "turns": total.get("turns") or 0,
            "tokens": total.get("tokens") or 0,
            "calls": total.get("calls") or 0,
            "last_finished": total.get("last_finished"),
            "status": run.status,
            "status_reason": run.status_reason,
        }
    return progress


def run_progress(run: Run) -> dict[str, Any]:
    """One run's progress (see runs_progress)."""
    return runs_progress([run])[run.pk]
