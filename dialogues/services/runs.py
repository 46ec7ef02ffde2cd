"""Writes for runs and dialogues: creating runs, persisting one engine step, finishing attempts.

A step happens in three parts so that no database lock is held while the model thinks:
`dialogue_step_begin` (a short transaction: claim the dialogue, count the step attempt, read the state), the
engine's LLM calls (no transaction), and `dialogue_step_save` (one short transaction: the turn, its rating and
every LLM call, unique on (dialogue, turn index) so a repeated step writes nothing twice).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.plan import MoveKind, plan
from dialogues.engine.prompts import prompt_set_version
from dialogues.engine.state import DialogueState
from dialogues.engine.stepper import CallRecord, StepResult
from dialogues.engine.strategy import AttemptOutcome, choose_kept, filter_explanation, passes_filter
from dialogues.models import (
    Branch,
    Dialogue,
    DialogueStatus,
    LLMCall,
    Run,
    RunStatus,
    StepRating,
    Task,
    Turn,
)
from dialogues.selectors import dialogue_state

logger = logging.getLogger(__name__)

ACTIVE = (DialogueStatus.PENDING, DialogueStatus.RUNNING)


@dataclass(frozen=True)
class Backend:
    """Which model a run talks to. The API key is never stored."""

    kind: str  # "simulated" or "openai"
    model: str
    base_urls: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        return self.kind == "simulated"


def _stable_int(*parts: object, bits: int = 31) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << bits) - 1)


def dialogue_seed(run_seed: int, task_key: str, attempt: int) -> int:
    return _stable_int("dialogue", run_seed, task_key, attempt)


def nsi_side_for(run_seed: int, task_key: str) -> int:
    """h-NSI: the side that runs the workflow, drawn per task with a seeded RNG (the same for every attempt)."""
    return _stable_int("hnsi-side", run_seed, task_key) % 2


def _new_dialogue(run: Run, task: Task, attempt: int, config: RunConfig) -> Dialogue:
    return Dialogue(
        run=run,
        task=task,
        attempt=attempt,
        seed=dialogue_seed(run.seed, task.external_id, attempt),
        nsi_side=nsi_side_for(run.seed, task.external_id) if config.variant == Variant.HNSI else None,
        simulated=run.simulated,
    )


@transaction.atomic
def run_create(*, created_by: Any, name: str, config: RunConfig, tasks: list[Task], backend: Backend) -> Run:
    """A run with its configuration and the first attempt of every task, all pending."""
    if not tasks:
        raise ValueError("a run needs at least one task")
    config = config.with_changes(model=backend.model)
    run = Run.objects.create(
        name=name,
        created_by=created_by,
        variant=config.variant.value,
        config=config.to_json(),
        prompt_set_version=prompt_set_version(),
        backend=backend.kind,
        model=backend.model,
        endpoints=list(backend.base_urls),
        simulated=backend.simulated,
        seed=config.seed,
    )
    run.tasks.set(tasks)
    Dialogue.objects.bulk_create([_new_dialogue(run, task, 0, config) for task in tasks], batch_size=500)
    return run


def dialogue_step_begin(*, dialogue_id: int) -> tuple[DialogueState, int] | None:
    """Claim a dialogue for one step. Returns its state and the step attempt number, or None if the dialogue
    is not active (finished, failed, paused, cancelled)."""
    with transaction.atomic():
        claimed = Dialogue.objects.filter(pk=dialogue_id, status__in=ACTIVE).update(
            status=DialogueStatus.RUNNING, step_attempts=F("step_attempts") + 1
        )
        if not claimed:
            return None
        Dialogue.objects.filter(pk=dialogue_id, started_at__isnull=True).update(started_at=timezone.now())
        dialogue = Dialogue.objects.select_related("run", "task__scenario", "task__agent1", "task__agent2").get(
            pk=dialogue_id
        )
        return dialogue_state(dialogue), dialogue.step_attempts


def _call_rows(dialogue_id: int, step_attempt: int, calls: list[CallRecord]) -> list[LLMCall]:
    return [
        LLMCall(
            dialogue_id=dialogue_id,
            turn_index=c.turn_index,
            step_attempt=step_attempt,
            purpose=c.purpose,
            messages=c.messages,
            params=c.params,
            responses=c.responses,
            parsed=c.parsed,
            error=c.error,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            latency_ms=c.latency_ms,
            endpoint=c.endpoint,
            model=c.model,
            transport_retries=c.transport_retries,
            requests=c.requests,
        )
        for c in calls
    ]


@dataclass(frozen=True)
class StepSaved:
    saved: bool  # False: this step had already been written (a repeated step)
    finished: bool


def dialogue_step_save(*, dialogue_id: int, step_attempt: int, result: StepResult) -> StepSaved:
    """Write one step: the turn, its rating and its LLM calls, in one transaction. Finishes the dialogue (and
    resolves the task's attempts) when nothing is left to do."""
    try:
        with transaction.atomic():
            dialogue = Dialogue.objects.select_for_update().get(pk=dialogue_id)
            if dialogue.status not in ACTIVE:
                return StepSaved(saved=False, finished=dialogue.status == DialogueStatus.FINISHED)
            rated_turn = None
            if result.turn is not None:
                turn = result.turn
                rated_turn = Turn.objects.create(
                    dialogue=dialogue,
                    index=turn.index,
                    speaker=turn.speaker,
                    action_type=turn.action.action_type.value,
                    argument=turn.action.argument,
                    forced=turn.forced,
                    branch=turn.branch.value,
                    reason=turn.reason,
                    nsi_step=turn.nsi_step.value if turn.nsi_step else "",
                    proposal=turn.proposal.value if turn.proposal else "",
                    draft=turn.draft,
                    own_utility=turn.own_utility,
                    other_utility=turn.other_utility,
                    human=turn.human,
                )
            if result.rating is not None:
                if rated_turn is None or rated_turn.index != result.rating_index:
                    rated_turn = Turn.objects.get(dialogue=dialogue, index=result.rating_index)
                rating = result.rating
                StepRating.objects.create(
                    turn=rated_turn,
                    dialogue=dialogue,
                    samples=rating["samples"],
                    rejected=rating["rejected"],
                    requested=rating["requested"],
                    valid=rating["valid"],
                    goal_c=rating["goal_c"],
                    goal_p=rating["goal_p"],
                    terminate=rating["terminate"],
                    closing=bool(rating.get("closing")),
                )
            LLMCall.objects.bulk_create(_call_rows(dialogue_id, step_attempt, result.calls))
            next_move = plan(result.state)
            finished = next_move.kind == MoveKind.FINISH
            if finished:
                _dialogue_finish(dialogue, result.state, next_move.end_reason.value)
            return StepSaved(saved=True, finished=finished)
    except IntegrityError:
        # The same turn (or rating) was written by an earlier run of this step: nothing to add.
        logger.info("dialogue %s: step already saved, skipping the repeat", dialogue_id)
        return StepSaved(saved=False, finished=False)


def _outcome(dialogue: Dialogue) -> AttemptOutcome:
    return AttemptOutcome(
        index=dialogue.attempt,
        final_goal_c=dialogue.final_goal_c,
        final_goal_p=dialogue.final_goal_p,
        nsi_used=dialogue.nsi_used,
        both_left=dialogue.end_reason == "both_left",
    )


def _dialogue_finish(dialogue: Dialogue, state: DialogueState, end_reason: str) -> None:
    final = state.final_rating()
    dialogue.final_goal_c = None if final is None else final["goal_c"]
    dialogue.final_goal_p = None if final is None else final["goal_p"]
    dialogue.nsi_used = state.nsi_used
    dialogue.end_reason = end_reason
    config = RunConfig.from_json(dialogue.run.config)
    outcome = _outcome(dialogue)
    dialogue.filter_passed = passes_filter(outcome, config)
    dialogue.filter_note = filter_explanation(outcome, config)
    dialogue.status = DialogueStatus.FINISHED
    dialogue.finished_at = timezone.now()
    dialogue.save()
    _attempts_resolve(dialogue, config)


def _attempts_resolve(dialogue: Dialogue, config: RunConfig) -> None:
    """After an attempt ends: keep it if it passes; otherwise start the next attempt, or, when all attempts are
    used, keep the best (highest final goal_c, then goal_p, then the earliest)."""
    siblings = list(Dialogue.objects.filter(run_id=dialogue.run_id, task_id=dialogue.task_id).order_by("attempt"))
    if dialogue.filter_passed:
        _keep(siblings, dialogue.attempt)
        return
    # the attempt in hand did not pass (it failed the filter or the step failed)
    if dialogue.attempt + 1 < config.attempts:
        if not any(s.attempt == dialogue.attempt + 1 for s in siblings):
            _new_dialogue(dialogue.run, dialogue.task, dialogue.attempt + 1, config).save()
        return
    finished = [s for s in siblings if s.status == DialogueStatus.FINISHED]
    _keep(siblings, choose_kept([_outcome(s) for s in finished], config))


def _keep(siblings: list[Dialogue], attempt: int | None) -> None:
    for sibling in siblings:
        kept = sibling.attempt == attempt
        if sibling.kept != kept:
            Dialogue.objects.filter(pk=sibling.pk).update(kept=kept)


@transaction.atomic
def dialogue_fail(*, dialogue_id: int, step_attempt: int, reason: str, calls: list[CallRecord]) -> None:
    """The engine gave up on a step: keep the calls it made (they show why) and mark the dialogue failed."""
    dialogue = Dialogue.objects.select_for_update().select_related("run").get(pk=dialogue_id)
    LLMCall.objects.bulk_create(_call_rows(dialogue_id, step_attempt, calls))
    if dialogue.status in ACTIVE:
        dialogue.status = DialogueStatus.FAILED
        dialogue.failure_reason = reason
        dialogue.finished_at = timezone.now()
        dialogue.nsi_used = dialogue.turns.filter(branch=Branch.NSI).exists()
        dialogue.save(update_fields=["status", "failure_reason", "finished_at", "nsi_used"])
        # a failed attempt counts as one that did not pass: the next attempt starts, or the best is kept
        _attempts_resolve(dialogue, RunConfig.from_json(dialogue.run.config))


def run_refresh_status(*, run_id: int) -> str:
    """A run is finished when none of its dialogues is pending or running (paused and cancelled runs stay)."""
    run = Run.objects.get(pk=run_id)
    if run.status == RunStatus.RUNNING and not run.dialogues.filter(status__in=ACTIVE).exists():
        run.status = RunStatus.FINISHED
        run.save(update_fields=["status"])
    return run.status
