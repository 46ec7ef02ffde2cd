"""Setting dialogues stepping, for pages: each service makes its change and, once the transaction commits, hands
what it dispatched to the workers. A task sent before the commit could find nothing to step, and a change rolled
back must send nothing, so the enqueueing lives here, beside the change, and never in a view.

A page that launches a run calls `run_launch`; one that creates a run otherwise (a fork, a benchmark) calls
`run_start` in the transaction that created it. Commands, outside any transaction, enqueue what runs/lifecycle.py
returns, or step the run in their own process.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from dialogues.runs.lifecycle import dialogue_resume, run_create, run_dispatch, run_resume
from dialogues.runs.models import Run
from dialogues.runs.tasks import dialogue_human_step_task, dialogue_manual_step_task
from dialogues.runs.worker import enqueue_steps


def run_start(*, run_id: int) -> None:
    """Once committed: dispatch the run's pending dialogues (up to its max_in_flight) and enqueue them."""
    transaction.on_commit(lambda: enqueue_steps(run_dispatch(run_id=run_id)))


@transaction.atomic
def run_launch(*, start_paused: bool = False, **fields: Any) -> Run:
    """A new run (`run_create` with `fields`), started once committed unless it starts paused."""
    run = run_create(start_paused=start_paused, **fields)
    if not start_paused:
        run_start(run_id=run.pk)
    return run


@transaction.atomic
def run_resume_start(*, run_id: int) -> None:
    """Resume a paused run (see `run_resume`; ValueError when its token budget is spent) and, once committed,
    enqueue what it dispatched."""
    dispatches = run_resume(run_id=run_id)
    transaction.on_commit(lambda: enqueue_steps(dispatches))


@transaction.atomic
def dialogue_resume_start(*, dialogue_id: int) -> None:
    """Let a paused dialogue run on by itself and, once committed, enqueue what its run dispatched."""
    dispatches = dialogue_resume(dialogue_id=dialogue_id)
    transaction.on_commit(lambda: enqueue_steps(dispatches))


def dialogue_step_start(*, dialogue_id: int) -> None:
    """Once committed: one step of the dialogue, asked for by hand; it waits again afterwards."""
    transaction.on_commit(lambda: dialogue_manual_step_task.delay(dialogue_id))


def dialogue_play_start(*, dialogue_id: int, action_type: str, argument: str, user_id: int | None) -> None:
    """Once committed: a person's action for the side they play, stepped (and rated) by a worker; then the expert
    goes on until the person's next move."""
    transaction.on_commit(lambda: dialogue_human_step_task.delay(dialogue_id, action_type, argument, user_id))
