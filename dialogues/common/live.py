"""Live updates, the part every area uses: the names of the channel groups (runs, a run, a dialogue, an import)
and `publish`, which sends a rendered fragment to a group once the current transaction commits.

A missing or full channel layer is logged, never raised: a live update must not undo the work it reports. What is
announced, and when, is each area's own (runs/events.py: steps and run progress; library/events.py: imports).
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
    send_after_commit(group, {"type": "fragment", "html": html})


def send_after_commit(group: str, message: dict[str, Any]) -> None:
    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                async_to_sync(layer.group_send)(group, message)
        except Exception:
            logger.warning("live update to %s not delivered", group, exc_info=True)

    transaction.on_commit(send)
