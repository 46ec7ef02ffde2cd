"""Celery tasks: thin, idempotent, ids in; the work happens in services."""

from celery import shared_task

from dialogues import services


@shared_task(acks_late=True, time_limit=600, soft_time_limit=570)
def import_job_run_task(job_id: int) -> str:
    return services.import_job_run(job_id=job_id).status
