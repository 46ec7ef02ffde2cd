"""python manage.py serve — the whole app in one process: Daphne (HTTP + websockets) and a Celery worker."""

# Daphne installs Twisted's asyncio reactor on import; it must come before anything imports the reactor.
import daphne.server  # isort:skip

import errno
import logging
import signal
import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from twisted.internet import reactor

from dialogues.library import services
from dialogues.runs.leases import leases_expire_all
from dialogues.runs.lifecycle import runs_reconcile
from dialogues.runs.worker import enqueue_steps
from omega_web.asgi import application
from omega_web.celery import app as celery_app
from omega_web.embedded import EmbeddedWorker

logger = logging.getLogger(__name__)


def _check_port_free(host: str, port: int) -> None:
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"Port {port} on {host} is already in use. Stop the other server or choose "
                    "another port: make run PORT=8001 (or serve --port 8001)."
                ) from exc
            raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from exc


class Command(BaseCommand):
    help = "Serve omega-web: Daphne for HTTP and websockets, plus a Celery worker in the same process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="web only (scaled mode, where `celery -A omega_web worker` runs elsewhere)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.OMEGA_WORKER_CONCURRENCY,
            help="threads of the in-process worker",
        )

    def handle(self, *args, host: str, port: int, no_worker: bool, concurrency: int, **options):
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(
                "The database has unapplied migrations: run `python manage.py migrate` (make run does this for you)."
            )
        connection.close()
        embedded_broker = settings.CELERY_BROKER_URL.startswith("memory://")
        if no_worker and embedded_broker:
            raise CommandError(
                "--no-worker needs a broker server (OMEGA_REDIS_URL); with the embedded broker "
                "nothing else could run the tasks."
            )
        _check_port_free(host, port)

        worker = None
        if options["verbosity"] < 2:
            # One line per task would drown the console; `serve -v 2` shows them. Set in LOGGING too, because the
            # worker's Django fixup configures logging again from it.
            settings.LOGGING["loggers"]["celery"]["level"] = "WARNING"
            logging.getLogger("celery").setLevel(logging.WARNING)
        if not no_worker:
            worker = EmbeddedWorker(celery_app, concurrency=concurrency, queues=settings.OMEGA_WORKER_QUEUES)
            worker.start()
            if embedded_broker:
                # The in-memory queue died with the last process: the database says what to take up again.
                requeued = services.import_job_requeue_interrupted()
                if requeued:
                    self.stdout.write(f"Re-queued {requeued} interrupted import(s).")
                in_flight = leases_expire_all()
                enqueue_steps(runs_reconcile())
                if in_flight:
                    self.stdout.write(f"Resumed {in_flight} dialogue(s) that were in flight.")

        interface = host.replace(":", "\\:")  # Twisted endpoint strings escape the colons of IPv6 addresses
        server = daphne.server.Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={interface}"],
            signal_handlers=True,
            ready_callable=lambda: self._announce(server, host, worker is not None, embedded_broker),
            verbosity=0,
        )
        if worker is not None:
            reactor.addSystemEventTrigger("before", "shutdown", worker.stop)
        # Started in the background from a non-interactive shell, SIGINT arrives ignored and Twisted would keep
        # ignoring it; restore the default so Ctrl-C and `kill -INT` stop the server like SIGTERM does.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        server.run()
        self.stdout.write("omega-web stopped.")

    def _announce(self, server, host: str, with_worker: bool, embedded_broker: bool) -> None:
        ports = [p for _, p in server.listening_addresses] or ["?"]
        shown = "localhost" if host in {"127.0.0.1", "0.0.0.0", "::1", "::"} else host
        mode = "embedded broker" if embedded_broker else "Redis broker"
        worker = f"in-process worker ({mode})" if with_worker else "no worker in this process"
        self.stdout.write(self.style.SUCCESS(f"omega-web is running at http://{shown}:{ports[0]}/"))
        self.stdout.write(
            f"  database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, {worker}. Stop with Ctrl-C."
        )
        self.stdout.flush()
