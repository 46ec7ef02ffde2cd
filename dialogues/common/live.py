"""Live updates: small events sent to channel groups; the consumers of open pages render what changed.

Publishing happens after the work is committed, and a missing or full channel layer is logged, never raised: a
live update must not undo the work it reports. Steps announce themselves from the stepping loop (async, one
connection pool per loop); run progress is announced at most twice a second per run and process, and always when
a dialogue ends.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


RUNS_GROUP = "runs"


def import_group(job_id: int) -> str:
    return f"import_{job_id}"


def dialogue_group(dialogue_id: int) -> str:
    return f"dialogue_{dialogue_id}"


def run_group(run_id: int) -> str:
    return f"run_{run_id}"


def publish(group: str, html: str) -> None:
    """From synchronous code: send a rendered fragment after the current transaction commits."""
    _after_commit(group, {"type": "fragment", "html": html})


def _after_commit(group: str, message: dict[str, Any]) -> None:
    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                async_to_sync(layer.group_send)(group, message)
        except Exception:
            logger.warning("live update to %s not delivered", group, exc_info=True)

    transaction.on_commit(send)
