"""A real Celery worker running inside the serving process (embedded mode).

The worker consumes from the same broker as always; with the default `memory://` broker that broker lives in
this process, so the whole app needs no server. It runs the threads pool in a daemon thread and is stopped
before the ASGI server shuts down.
"""

from __future__ import annotations

import logging
import socket
import threading

from celery import Celery, signals
from django.conf import settings

logger = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, app: Celery, *, concurrency: int, queues: list[str] | None = None) -> None:
        self.app = app
        self.concurrency = concurrency
        self.queues = queues or [settings.CELERY_TASK_DEFAULT_QUEUE]
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._controller = None

    def _on_ready(self, *args: object) -> None:
        signals.worker_ready.send(sender=self._controller)
        self._ready.set()

    def start(self, timeout: float = 30.0) -> None:
        self._controller = self.app.WorkController(
            hostname=f"embedded@{socket.gethostname()}",
            pool_cls="threads",
            concurrency=self.concurrency,
            queues=self.queues,
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=self._on_ready,
        )
        self._thread = threading.Thread(target=self._controller.start, name="celery-embedded", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the embedded Celery worker did not start within {timeout:.0f} s")
        logger.debug("embedded Celery worker ready (%d threads)", self.concurrency)

    def stop(self, timeout: float = 15.0) -> None:
        if self._controller is None:
            return
        self._controller.stop(in_sighandler=False)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("embedded Celery worker still busy after %.0f s; leaving it", timeout)
