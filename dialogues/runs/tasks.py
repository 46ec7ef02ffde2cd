"""The runs' Celery tasks (the `llm` queue): a dispatched dialogue driven while this worker holds its lease, a step
asked for by hand, and a person's action. Thin and idempotent: ids in, the work in runs/driving.py and the engine.
Their names keep the old module path (`dialogues.tasks.*`): queued messages and logs name them so."""

from celery import shared_task
from celery.signals import worker_ready

from dialogues.engine.stepper import human_action
from dialogues.runs.driving import db, drive_dialogue, step_dialogue
from dialogues.runs.lifecycle import run_dispatch
from dialogues.runs.worker import enqueue_steps, process_loop


def _drive(dialogue_id: int, token: str | None, **kwargs: object) -> str:
    """Step the dialogue while this worker holds its lease; when it ends, the run's next dialogues go to the
    broker, so they spread over all workers."""
    loop = process_loop()
    report = loop.run(drive_dialogue(dialogue_id, loop.llms, token, **kwargs))
    if report.finished and report.run_id is not None:
        enqueue_steps(loop.run(db(run_dispatch, run_id=report.run_id)))
    return report.kind


@shared_task(name="dialogues.tasks.dialogue_step_task", acks_late=True, ignore_result=True)
def dialogue_step_task(dialogue_id: int, token: str) -> str:
    """A dispatched dialogue, with its lease token: stepped here, one saved step at a time, until it ends, waits
    or loses its lease (a worker that dies leaves a stale lease, and the reconciler hands the dialogue on)."""
    return _drive(dialogue_id, token)


@shared_task(name="dialogues.tasks.dialogue_manual_step_task", acks_late=True, ignore_result=True)
def dialogue_manual_step_task(dialogue_id: int) -> str:
    """One step asked for by hand (the "Next turn" button); the dialogue waits again afterwards."""
    loop = process_loop()
    return loop.run(step_dialogue(dialogue_id, loop.llms)).kind


@shared_task(name="dialogues.tasks.dialogue_human_step_task", acks_late=True, ignore_result=True)
def dialogue_human_step_task(dialogue_id: int, action_type: str, argument: str, user_id: int | None) -> str:
    """A person's action for the side they play, rated as the method says; then the expert goes on until the
    person's next move (or the end)."""
    return _drive(dialogue_id, None, human=human_action(action_type, argument), author=user_id)


@worker_ready.connect
def _start_stepping_loop(**kwargs: object) -> None:
    """Every worker starts its loop at once, so its reconciler runs even if no task ever arrives (a lost queue)."""
    process_loop()
