"""The stepping machinery of a worker process: one long-lived event loop in a background thread, with one
pooled LLM client per backend, the lease heartbeat and the periodic reconciler; and `enqueue_steps`, which sends
dispatched dialogues to the workers.

Celery tasks (threads pool) hand their coroutine to this loop and wait for it, so hundreds of steps can wait
on the model at once in one process while the database work stays in a few capped threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from django.conf import settings

from dialogues.llm.backends import LLMPool
from dialogues.runs.driving import db, heartbeat, wait_or_stop
from dialogues.runs.leases import Dispatch
from dialogues.runs.lifecycle import runs_reconcile

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ProcessLoop:
    def __init__(self, *, reconcile: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.llms = LLMPool()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omega-steps", daemon=True)
        self._reconcile = reconcile
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._stop = asyncio.Event()
        self.loop.create_task(heartbeat(self._stop))
        if self._reconcile:
            self.loop.create_task(self._reconciler())
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    async def _reconciler(self) -> None:
        interval = settings.OMEGA_RECONCILE_SECONDS
        while not self._stop.is_set():
            try:
                dispatched = await db(runs_reconcile)
                if dispatched:
                    await self.loop.run_in_executor(None, enqueue_steps, dispatched)
            except Exception:  # database or broker away for a moment: try again next round
                logger.warning("reconciler round failed", exc_info=True)
            await wait_or_stop(self._stop, interval)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.submit(coroutine).result()

    def stop(self) -> None:
        async def shutdown() -> None:
            self._stop.set()
            await self.llms.aclose()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:  # the heartbeat and the reconciler end once stop is set
                await asyncio.wait(others, timeout=5)

        try:
            self.submit(shutdown()).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


_instance: ProcessLoop | None = None
_lock = threading.Lock()


def process_loop() -> ProcessLoop:
    global _instance
    with _lock:
        if _instance is None:
            _instance = ProcessLoop()
        return _instance


def enqueue_steps(dispatches: list[Dispatch]) -> None:
    """Send dispatched dialogues to the workers (the `llm` queue)."""
    from dialogues.runs.tasks import dialogue_step_task  # the tasks run in this module's loop: a real cycle

    for dispatch in dispatches:
        dialogue_step_task.apply_async(args=(dispatch.dialogue_id, dispatch.token))
