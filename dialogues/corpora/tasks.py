"""The corpora's Celery task: a requested version's files written on a worker (thin, idempotent, its id in)."""

from celery import shared_task

from dialogues.corpora.export import corpus_version_build


@shared_task(name="dialogues.tasks.corpus_version_build_task", acks_late=True, ignore_result=True)
def corpus_version_build_task(version_id: int) -> str:
    """Write a requested corpus version (files, manifest, zip); redone from its frozen selection if a worker died."""
    try:
        return corpus_version_build(version_id=version_id).status
    except Exception:
        return "failed"  # the version holds the reason; a bad export must not be retried forever
