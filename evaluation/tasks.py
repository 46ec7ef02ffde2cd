"""Celery tasks: thin, idempotent, ids in; the work happens in services and the engine."""

from celery import shared_task


@shared_task(name="evaluation.tasks.evaluation_job_task", acks_late=True, ignore_result=True)
def evaluation_job_task(job_id: int) -> str:
    """An evaluation job (S_div, relevance judge, SOTOPIA-EVAL) on a worker: torch never enters the web process."""
    from evaluation.jobs import job_run

    return job_run(job_id).status
