"""Live updates: small events sent to channel groups; the consumers of open pages render what changed.

Publishing happens after the work is committed, and a missing or full channel layer is logged, never raised: a
live update must not undo the work it reports. Steps announce themselves from the stepping loop (async, one
connection pool per loop); run progress is announced at most twice a second per run and process, and always when
a dialogue ends.
"""

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
