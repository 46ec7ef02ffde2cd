"""The library's Celery task: run one import job on a worker (thin and idempotent, the job's id in; the work
happens in services.import_job_run). Its name predates the areas and is kept for queued messages."""

from celery import shared_task

from dialogues.library import services


@shared_task(name="dialogues.tasks.import_job_run_task", acks_late=True)
def import_job_run_task(job_id: int) -> str | None:
    job = services.import_job_run(job_id=job_id)
    return None if job is None else job.status
