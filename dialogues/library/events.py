"""Live updates of import jobs: a job's status fragment, rendered and published to its page's channel group
whenever the job changes (claimed, progressing, finished). Publishing is dialogues.common.live's: after commit,
and a missing or full channel layer is logged, never raised."""

from __future__ import annotations

import logging

from django.template.loader import render_to_string

from dialogues.common.live import import_group, publish
from dialogues.library.models import ImportJob

logger = logging.getLogger(__name__)


def render_import_job(job: ImportJob) -> str:
    return render_to_string("library/imports/detail.html#job-status", {"job": job})


def import_job_changed(job: ImportJob) -> None:
    publish(import_group(job.pk), render_import_job(job))
