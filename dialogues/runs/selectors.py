"""Reads about runs and dialogues that pages and services share: a dialogue by id (or a 404), the configuration a
dialogue runs with, the engine's state of a dialogue, the progress of runs counted from rows, and the agreements
the turn limit cut off."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Q, Sum
from django.http import Http404

from dialogues.engine.actions import Action, ActionType
from dialogues.engine.config import RunConfig
from dialogues.engine.prompts import PromptSet
from dialogues.engine.state import DialogueState, EndReason, NsiStep, Proposal
from dialogues.engine.state import Turn as EngineTurn
from dialogues.engine.strategy import AttemptOutcome, fails_only_for_ending
from dialogues.engine.strategy import Branch as EngineBranch
from dialogues.library.selectors import task_spec
from dialogues.prompt_sets.services import prompt_set_recorded
from dialogues.runs.models import Dialogue, DialogueStatus, Run, RunStatus, StepRating, Turn


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


def dialogue_prompt_set(dialogue: Dialogue) -> PromptSet:
    """The prompt set a dialogue renders with: a fork arm's own (recorded in its changes), else its run's."""
    chosen = (dialogue.changes or {}).get("prompt_set") or {}
    if chosen:
        return prompt_set_recorded(chosen["name"], chosen["version"])
    return prompt_set_recorded(dialogue.run.prompt_set_name, dialogue.run.prompt_set_version)


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
        prompts=dialogue_prompt_set(dialogue),
    )


OPEN_STATUSES = (DialogueStatus.PENDING, DialogueStatus.RUNNING, DialogueStatus.PAUSED)
SETTLED_RUN_STATUSES = (RunStatus.FINISHED, RunStatus.CANCELLED)
WAITING_FOR_A_HAND = "every unfinished dialogue waits for a step by hand"


def run_shown_status(status: str, by_status: dict[str, int]) -> str:
    """The status people see: a running run none of whose unfinished dialogues moves on its own (each is paused,
    waiting for a step by hand, as a run that starts paused is) is paused, not running."""
    moving = by_status.get(DialogueStatus.RUNNING, 0) + by_status.get(DialogueStatus.PENDING, 0)
    if status == RunStatus.RUNNING and not moving and by_status.get(DialogueStatus.PAUSED, 0):
        return RunStatus.PAUSED
    return status


def runs_progress(runs: list[Run]) -> dict[int, dict[str, Any]]:
    """Each run's progress, counted from rows in four grouped queries however many runs there are: dialogues by
    status, settled tasks, turns, tokens and calls, when its last dialogue ended, and the status to show (see
    run_shown_status) with its reason."""
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
    late = late_agreements(ids)
    progress = {}
    for run in runs:
        counts, total = by_status[run.pk], totals.get(run.pk, {})
        task_count = tasks.get(run.pk, 0)
        shown = run_shown_status(run.status, counts)
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
            **late[run.pk],
            "status": shown,
            "status_reason": run.status_reason or (WAITING_FOR_A_HAND if shown != run.status else ""),
        }
    return progress


def late_agreements(run_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per run, its finished dialogues that reached `confirm_proposal` but ended at the turn limit before both
    agents left (`late_agreements`), and how many of them failed the filter only for that reason: their final goal_c
    reaches the threshold (`late_only`). With the paper's limit (`exit_overrun_turns` 0) a first confirm at turns
    16–19 leaves no room for the exit. One query; the configuration is read only for the dialogues counted."""
    out = {pk: {"late_agreements": 0, "late_only": 0} for pk in run_ids}
    confirmed = Turn.objects.filter(dialogue=OuterRef("pk"), proposal=Proposal.CONFIRM)
    late = (
        Dialogue.objects.filter(run_id__in=run_ids, status=DialogueStatus.FINISHED, end_reason=EndReason.TURN_LIMIT)
        .filter(Exists(confirmed))
        .select_related("run")
        .only("run__config", "attempt", "changes", "final_goal_c", "final_goal_p", "nsi_used", "end_reason")
    )
    for dialogue in late:
        outcome = AttemptOutcome(
            index=dialogue.attempt,
            final_goal_c=dialogue.final_goal_c,
            final_goal_p=dialogue.final_goal_p,
            nsi_used=dialogue.nsi_used,
            both_left=False,
        )
        out[dialogue.run_id]["late_agreements"] += 1
        out[dialogue.run_id]["late_only"] += fails_only_for_ending(outcome, dialogue_config(dialogue))
    return out


def run_progress(run: Run) -> dict[str, Any]:
    """One run's progress (see runs_progress)."""
    return runs_progress([run])[run.pk]
