"""Live updates: server-rendered fragments pushed to channel groups, which consumers forward to browsers.

Publishing happens after the surrounding transaction commits, and a missing or full channel layer is logged,
never raised: a live update must not roll back the work it reports.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

from dialogues.models import ImportJob

logger = logging.getLogger(__name__)


def import_group(job_id: int) -> str:
    return f"import_{job_id}"


def render_import_job(job: ImportJob) -> str:
    return render_to_string("dialogues/imports/detail.html#job-status", {"job": job})


def publish(group: str, html: str) -> None:
    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                async_to_sync(layer.group_send)(group, {"type": "fragment", "html": html})
        except Exception:
            logger.warning("live update to %s not delivered", group, exc_info=True)

    transaction.on_commit(send)


def import_job_changed(job: ImportJob) -> None:
    publish(import_group(job.pk), render_import_job(job))
