"""Evaluation's Celery task: an evaluation job run on a worker (thin, idempotent, its id in; jobs.py does the work
and enqueues this task after the job's row commits)."""

from celery import shared_task

from evaluation.jobs import job_run


@shared_task(name="evaluation.tasks.evaluation_job_task", acks_late=True, ignore_result=True)
def evaluation_job_task(job_id: int) -> str:
    """An evaluation job (S_div, relevance judge, SOTOPIA-EVAL) on a worker: torch never enters the web process."""
    return job_run(job_id).status
