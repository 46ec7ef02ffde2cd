"""The worker command of the operations guide consumes the four queues, one per kind of work: a real worker started
with exactly that command (read from docs/operations.md) answers `celery inspect active_queues` with llm, eval,
export and import, on either broker."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import ROOT, app_env, free_port, stop
from tests.support.services import rabbitmq_vhost, redis_database

pytestmark = [pytest.mark.services, pytest.mark.slow]

QUEUES = {"llm", "eval", "export", "import"}


def documented_worker_command() -> list[str]:
    """The first `celery -A omega_web worker` command in the operations guide's *Workers* section."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split("### Workers\n", 1)[1]
    line = re.search(r"^\.venv/bin/celery -A omega_web worker .*$", section, re.MULTILINE).group(0)
    return ["celery", *shlex.split(line)[1:]]  # .venv/bin/celery run as `python -m celery` of this interpreter


@contextmanager
def broker_env(tmp_path: Path, broker: str) -> Iterator[dict[str, str]]:
    with redis_database() as (redis_url, prefix):
        if broker == "redis":
            yield app_env(tmp_path, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix)
            return
        with rabbitmq_vhost() as broker_url:
            yield app_env(tmp_path, OMEGA_BROKER_URL=broker_url, OMEGA_REDIS_URL=redis_url,
                          OMEGA_REDIS_KEY_PREFIX=prefix)  # fmt: skip


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_the_documented_worker_command_consumes_the_four_queues(tmp_path, broker):
    command = documented_worker_command()
    assert "--queues" in command, command
    with broker_env(tmp_path, broker) as env:
        log = tmp_path / "worker.log"
        name = f"omega-queues-{free_port()}@localhost"
        with log.open("w") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", *command, "--concurrency", "2", "--hostname", name],
                cwd=ROOT,
                env={**env, "OMEGA_CELERY_LOG_LEVEL": "INFO"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            answer = None
            for _ in range(10):  # the worker answers once it is ready
                inspect = subprocess.run(
                    [sys.executable, "-m", "celery", "-A", "omega_web", "inspect", "active_queues",
                     "--destination", name, "--json", "--timeout", "3"],
                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                if inspect.returncode == 0 and inspect.stdout.strip():
                    answer = json.loads(inspect.stdout)
                    break
                assert worker.poll() is None, log.read_text()
        finally:
            stop(worker)
    assert answer is not None, f"no answer from {name}:\n{inspect.stdout}{inspect.stderr}\n{log.read_text()}"
    assert {queue["name"] for queue in answer[name]} == QUEUES
