"""Celery tasks: thin, idempotent, ids in; the work happens in services and the engine."""

from celery import shared_task

from dialogues.library import services


@shared_task(name="dialogues.tasks.import_job_run_task", acks_late=True)
def import_job_run_task(job_id: int) -> str | None:
    job = services.import_job_run(job_id=job_id)
    return None if job is None else job.status
