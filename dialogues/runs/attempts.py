"""Attempts: a task's dialogues in a run are its attempts. When one ends it is checked against the method's filter
(`dialogue_finish`); one that passes is kept, one that does not starts the next attempt, and when all are used the
best is kept (`attempts_resolve`). Seeds (and the h-NSI side) are drawn per run, task and attempt, so a run replays.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.utils import timezone

from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.state import DialogueState
from dialogues.engine.strategy import AttemptOutcome, choose_kept, filter_explanation, passes_filter
from dialogues.library.models import Task
from dialogues.runs.models import Dialogue, DialogueStatus, Run
from dialogues.runs.selectors import dialogue_config


def _outcome(dialogue: Dialogue) -> AttemptOutcome:
    return AttemptOutcome(
        index=dialogue.attempt,
        final_goal_c=dialogue.final_goal_c,
        final_goal_p=dialogue.final_goal_p,
        nsi_used=dialogue.nsi_used,
        both_left=dialogue.end_reason == "both_left",
    )


def dialogue_finish(dialogue: Dialogue, state: DialogueState, end_reason: str, counters: dict[str, Any]) -> None:
    """The last step's save, the dialogue locked by the caller: the step's `counters` (F() expressions) raised and
    the dialogue finished in one update, then its task's attempts resolved."""
    final = state.final_rating()
    dialogue.final_goal_c = None if final is None else final["goal_c"]
    dialogue.final_goal_p = None if final is None else final["goal_p"]
    dialogue.nsi_used = state.nsi_used
    dialogue.end_reason = end_reason
    config = dialogue_config(dialogue)
    outcome = _outcome(dialogue)
    dialogue.filter_passed = passes_filter(outcome, config)
    dialogue.filter_note = filter_explanation(outcome, config)
    dialogue.status = DialogueStatus.FINISHED
    dialogue.finished_at = timezone.now()
    dialogue.lease_token, dialogue.lease_until = "", None
    finished = ["final_goal_c", "final_goal_p", "nsi_used", "end_reason", "filter_passed", "filter_note", "status"]
    finished += ["finished_at", "lease_token", "lease_until"]
    # the counters go up with F(), never written back from this (stale) instance
    Dialogue.objects.filter(pk=dialogue.pk).update(**counters, **{name: getattr(dialogue, name) for name in finished})
    if not dialogue.run.is_fork:  # a fork is an experiment: no regeneration, nothing kept for a corpus
        attempts_resolve(dialogue, config)


def attempts_resolve(dialogue: Dialogue, config: RunConfig) -> None:
    """After an attempt ends: keep it if it passes; otherwise start the next attempt, or, when all attempts are
    used, keep the best (highest final goal_c, then goal_p, then the earliest)."""
    siblings = list(
        Dialogue.objects.filter(run_id=dialogue.run_id, task_id=dialogue.task_id)
        .only("attempt", "status", "kept", "final_goal_c", "final_goal_p", "nsi_used", "end_reason")
        .order_by("attempt")
    )
    if dialogue.filter_passed:
        _keep(siblings, dialogue.attempt)
        return
    # the attempt in hand did not pass (it failed the filter or the step failed)
    if dialogue.attempt + 1 < config.attempts:
        if not any(s.attempt == dialogue.attempt + 1 for s in siblings):
            attempt_build(dialogue.run, dialogue.task, dialogue.attempt + 1, config).save()
        return
    finished = [s for s in siblings if s.status == DialogueStatus.FINISHED]
    _keep(siblings, choose_kept([_outcome(s) for s in finished], config))


def _keep(siblings: list[Dialogue], attempt: int | None) -> None:
    for sibling in siblings:
        kept = sibling.attempt == attempt
        if sibling.kept != kept:
            Dialogue.objects.filter(pk=sibling.pk).update(kept=kept)


def _stable_int(*parts: object, bits: int = 31) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << bits) - 1)


def dialogue_seed(run_seed: int, task_key: str, attempt: int) -> int:
    return _stable_int("dialogue", run_seed, task_key, attempt)


def nsi_side_for(run_seed: int, task_key: str) -> int:
    """h-NSI: the side that runs the workflow, drawn per task with a seeded RNG (the same for every attempt)."""
    return _stable_int("hnsi-side", run_seed, task_key) % 2


def attempt_build(run: Run, task: Task, attempt: int, config: RunConfig) -> Dialogue:
    """Attempt `attempt` of `task` in `run`, not yet saved, with its seed (and its h-NSI side)."""
    return Dialogue(
        run=run,
        task=task,
        attempt=attempt,
        seed=dialogue_seed(run.seed, task.external_id, attempt),
        nsi_side=nsi_side_for(run.seed, task.external_id) if config.variant == Variant.HNSI else None,
        simulated=run.simulated,
    )
