"""Starting the app's own processes (serve, celery worker, manage.py commands) for tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

# Leases, heartbeats and the reconciler short enough that a test sees a crashed worker's dialogues taken over.
FAST_LEASES = {
    "OMEGA_LEASE_SECONDS": "4",
    "OMEGA_LEASE_HEARTBEAT_SECONDS": "1",
    "OMEGA_QUEUE_LEASE_SECONDS": "8",
    "OMEGA_RECONCILE_SECONDS": "2",
    "OMEGA_SIMULATED_LATENCY_MS": "20",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess of the app: its own var/ directory, no inherited OMEGA_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMEGA_", "DJANGO_"))}
    env.update(
        OMEGA_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="omega_web.settings",
        PYTHONUNBUFFERED="1",
        OMEGA_LOG_LEVEL="WARNING",
        OMEGA_IGNORE_DOTENV="1",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Served:
    def __init__(self, process: subprocess.Popen, url: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.process, self.url, self.log = process, url, log
        self.env = env or {}  # the served app's environment: `manage(served.env, ...)` reads its database

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve(env: dict[str, str], *extra_args: str, timeout: float = 60) -> Iterator[Served]:
    """`manage.py serve` on a free port; waits until /healthz answers; stops it with SIGTERM afterwards."""
    port = free_port()
    log = Path(env["OMEGA_VAR_DIR"]) / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), *extra_args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    served = Served(process, url, log, env)
    try:
        wait_until_answering(process, f"{url}/healthz", "serve", log, timeout)
        yield served
    finally:
        stop(process)


def wait_until_answering(process: subprocess.Popen, url: str, name: str, log: Path, timeout: float) -> None:
    """Until GET url answers 200; raises with the process's log if it exits or stays silent for timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')[-5000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within {timeout} s:\n{log.read_text(errors='replace')[-5000:]}")
        time.sleep(0.2)


# The queues of the worker command in docs/operations.md (one per kind of work; settings.CELERY_TASK_ROUTES).
WORKER_QUEUES = "llm,eval,export,import"


@contextmanager
def celery_worker(
    env: dict[str, str], *, concurrency: int = 2, queues: str = WORKER_QUEUES
) -> Iterator[subprocess.Popen]:
    """A real `celery -A omega_web worker` process (the threads pool, as documented); waits for 'ready'."""
    env = {**env, "OMEGA_LOG_LEVEL": "INFO", "OMEGA_CELERY_LOG_LEVEL": "INFO"}
    log = Path(env["OMEGA_VAR_DIR"]) / f"worker-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        # the worker logs its own log lines here too (see `worker_log`)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "omega_web",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                # several workers on one machine need names of their own (RabbitMQ's control queue is per name)
                "--hostname",
                f"omega-{log.stem}@%h",
                "--queues",
                queues,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not re.search(r"\bready\b", log.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def login(client: httpx.Client, username: str, password: str) -> None:
    """Log in through the real login form (CSRF included)."""
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = client.post(
        "/accounts/login/", data={"username": username, "password": password, "csrfmiddlewaretoken": token}
    )
    if answer.status_code != 302:
        raise AssertionError(f"login failed: {answer.status_code}")


COUNT = (
    "from dialogues.models import *; from django.contrib.auth.models import User; "
    "print(Task.objects.count(), Run.objects.count(), Dialogue.objects.count(), Turn.objects.count(), "
    "User.objects.count())"
)


def counts(env) -> str:
    """Tasks, runs, dialogues, turns and accounts in the app's database (backup and restore compare them)."""
    result = manage(env, "shell", "-c", COUNT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
