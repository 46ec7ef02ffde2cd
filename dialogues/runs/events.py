"""Live updates of runs and dialogues: small events sent to their channel groups; the consumers of open pages
render what changed.

Publishing happens after the work is committed, and a missing or full channel layer is logged, never raised: a
live update must not undo the work it reports. Steps announce themselves from the stepping loop (async, one
connection pool per loop); run progress is announced at most twice a second per run and process, and always when
a dialogue ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.layers import get_channel_layer

from dialogues.common.live import RUNS_GROUP, dialogue_group, run_group, send_after_commit

logger = logging.getLogger(__name__)


PROGRESS_EVERY = 0.5  # seconds between progress announcements of one run from one process


def run_changed(run_id: int) -> None:
    """From synchronous code (a view that paused or resumed a run): the run's pages refresh its progress."""
    message = {"type": "run.changed", "run": run_id}
    send_after_commit(run_group(run_id), message)
    send_after_commit(RUNS_GROUP, message)


def dialogue_changed(dialogue_id: int, run_id: int) -> None:
    """From synchronous code (a view that paused a dialogue)."""
    send_after_commit(dialogue_group(dialogue_id), {"type": "dialogue.changed", "dialogue": dialogue_id, "rated": None})
    run_changed(run_id)


_last_progress: dict[int, float] = {}


_trailing: set[int] = set()  # runs with a progress announcement scheduled for the end of the quiet interval


async def _announce_progress(layer: Any, run_id: int) -> None:
    _last_progress[run_id] = time.monotonic()
    message = {"type": "run.changed", "run": run_id}
    await layer.group_send(run_group(run_id), message)
    await layer.group_send(RUNS_GROUP, message)


async def _announce_later(layer: Any, run_id: int, delay: float) -> None:
    try:
        await asyncio.sleep(delay)
        await _announce_progress(layer, run_id)
    except Exception:
        logger.warning("live progress of run %s not delivered", run_id, exc_info=True)
    finally:
        _trailing.discard(run_id)


async def announce_step(*, dialogue_id: int, run_id: int | None, rated: int | None, done: bool) -> None:
    """From the stepping loop, after a step was saved: the dialogue's pages add the new turn (and re-render a turn
    that just got its closing rating); the run's pages refresh the progress.

    Progress goes out at once if the run was quiet for PROGRESS_EVERY seconds (or `done`: a dialogue ended, a
    step taken by hand); otherwise once at the end of the interval, so the last step of a burst is never lost."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            dialogue_group(dialogue_id), {"type": "dialogue.changed", "dialogue": dialogue_id, "rated": rated}
        )
        if run_id is None:
            return
        wait = PROGRESS_EVERY - (time.monotonic() - _last_progress.get(run_id, 0.0))
        if done or wait <= 0:
            await _announce_progress(layer, run_id)
        elif run_id not in _trailing:
            _trailing.add(run_id)
            _background.add(task := asyncio.get_running_loop().create_task(_announce_later(layer, run_id, wait)))
            task.add_done_callback(_background.discard)
    except Exception:
        logger.warning("live update for dialogue %s not delivered", dialogue_id, exc_info=True)


_background: set[asyncio.Task] = set()  # strong references to the scheduled announcements
