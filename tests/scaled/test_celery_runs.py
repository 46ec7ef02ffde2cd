"""Runs on real Celery workers with Redis and PostgreSQL, and what a crash does to them: a worker killed with
SIGKILL mid-run, and the broker restarted mid-run. Each time the run finishes, every dialogue's turns are
contiguous and unique, and no LLM call is counted twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from tests.support.processes import FAST_LEASES, ROOT, app_env, celery_worker, free_port, manage, stop
from tests.support.services import postgres_database, query, redis_database, scalar, unavailable

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def pg_url():
    with postgres_database() as url:
        yield url


def prepare(env: dict[str, str], sotopia_dir: Path) -> None:
    assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
    result = manage(env, "import_sotopia", str(sotopia_dir), "-v", "0")
    assert result.returncode == 0, result.stderr


def start_generate(env: dict[str, str], log: Path, *tasks: str) -> subprocess.Popen:
    """`generate --celery` of the 70 hard SOTOPIA tasks (or `tasks`: generate's own arguments) with the simulated
    expert; it follows the run's progress and exits when the run is finished."""
    with log.open("w") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "generate",
                "--tasks",
                *(tasks or ["hard"]),
                "--source",
                "sotopia",
                "--simulated",
                "--celery",
                "--judge-samples",
                "3",
                "--concurrency",
                "24",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_turns(pg_url: str, count: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turns = scalar(pg_url, "SELECT count(*) FROM dialogues_turn")
        if turns >= count:
            return turns
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} turns after {timeout} s")


def assert_run_is_whole(pg_url: str, tasks: int = 70) -> None:
    assert scalar(pg_url, "SELECT status FROM dialogues_run") == "finished"
    assert scalar(pg_url, "SELECT count(*) FROM dialogues_dialogue WHERE status <> 'finished'") == 0
    assert scalar(pg_url, "SELECT count(DISTINCT task_id) FROM dialogues_dialogue WHERE kept") == tasks
    # turns are contiguous from 0 and alternate speakers (uniqueness is a database constraint)
    gaps = query(
        pg_url,
        """
        SELECT dialogue_id FROM dialogues_turn GROUP BY dialogue_id
        HAVING count(*) <> max(index) + 1 OR min(index) <> 0""",
    )
    assert gaps == []
    assert scalar(pg_url, "SELECT count(*) FROM dialogues_turn WHERE speaker <> index % 2") == 0
    # no LLM call counted twice: each turn's calls for one purpose come from a single step attempt ...
    doubled = query(
        pg_url,
        """
        SELECT dialogue_id, turn_index, purpose FROM dialogues_llmcall
        GROUP BY dialogue_id, turn_index, purpose HAVING count(DISTINCT step_attempt) > 1""",
    )
    assert doubled == []
    # ... and the counters agree with the rows
    mismatched = query(
        pg_url,
        """
        SELECT d.id FROM dialogues_dialogue d LEFT JOIN dialogues_llmcall c ON c.dialogue_id = d.id
        GROUP BY d.id, d.calls_count HAVING count(c.id) <> d.calls_count""",
    )
    assert mismatched == []
    assert scalar(pg_url, "SELECT sum(tokens) FROM dialogues_dialogue") == scalar(
        pg_url, "SELECT sum(prompt_tokens + completion_tokens) FROM dialogues_llmcall"
    )


def test_sigkill_a_worker_mid_run(tmp_path, pg_url, sotopia_dir):
    with redis_database() as (redis_url, prefix):
        env = app_env(
            tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix, **FAST_LEASES
        )
        prepare(env, sotopia_dir)
        generate = start_generate(env, tmp_path / "generate.log")
        try:
            with celery_worker(env, concurrency=24) as first:
                at_kill = wait_for_turns(pg_url, 300)
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(10)
            assert scalar(pg_url, "SELECT count(*) FROM dialogues_dialogue WHERE status = 'running'") > 0
            with celery_worker(env, concurrency=24):
                generate.wait(480)
        finally:
            stop(generate)
        output = (tmp_path / "generate.log").read_text()
        assert generate.returncode == 0, output
        assert "finished" in output.splitlines()[-1]
        assert scalar(pg_url, "SELECT count(*) FROM dialogues_turn") > at_kill
        logs = "".join(p.read_text() for p in sorted(tmp_path.glob("worker-*.log")))
        assert "lease went stale, re-enqueued" in logs  # the second worker took over what the first held
        assert_run_is_whole(pg_url)


@contextmanager
def own_redis(port: int, directory: Path) -> Iterator[subprocess.Popen]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    import socket

    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield process
    finally:
        stop(process)


def test_restart_the_broker_mid_run(tmp_path, pg_url, sotopia_dir):
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = app_env(tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, **FAST_LEASES)
    prepare(env, sotopia_dir)
    with own_redis(port, tmp_path) as redis_server:
        generate = start_generate(env, tmp_path / "generate.log")
        try:
            with ExitStack() as workers:
                worker = workers.enter_context(celery_worker(env, concurrency=24))
                wait_for_turns(pg_url, 300)
                stop(redis_server)  # everything queued in Redis is gone with it
                time.sleep(2)
                with own_redis(port, tmp_path):
                    deadline = time.monotonic() + 480
                    while generate.poll() is None and time.monotonic() < deadline:
                        # Celery's worker may exit on the lost connection (a kombu race: "Unrecoverable error"); the
                        # supervisor the operations guide asks for (systemd Restart=always) starts it again
                        if worker.poll() is not None:
                            worker = workers.enter_context(celery_worker(env, concurrency=24))
                        time.sleep(1)
        finally:
            stop(generate)
    output = (tmp_path / "generate.log").read_text()
    assert generate.returncode == 0, output
    assert_run_is_whole(pg_url)


def test_the_database_drops_every_connection_mid_run(tmp_path, pg_url, sotopia_dir):
    """PostgreSQL terminates every connection of the app three times during a run (a failover, a restart): workers
    and the following `generate` reconnect, a step cut off is redone from its lease, and the run is whole."""
    database = urlparse(pg_url).path.lstrip("/")
    with redis_database() as (redis_url, prefix):
        env = app_env(
            tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix, **FAST_LEASES
        )
        prepare(env, sotopia_dir)
        generate = start_generate(env, tmp_path / "generate.log")
        dropped = 0
        try:
            with celery_worker(env, concurrency=24):
                for turns in (200, 600, 1000):
                    wait_for_turns(pg_url, turns)
                    with psycopg.connect(pg_url, autocommit=True) as admin:
                        dropped += admin.execute(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()",
                            (database,),
                        ).fetchone()[0]
                generate.wait(480)
        finally:
            stop(generate)
        output = (tmp_path / "generate.log").read_text()
        assert dropped >= 6, dropped  # the worker's and generate's connections, each time
        assert generate.returncode == 0, output
        assert "finished" in output.splitlines()[-1]
        assert_run_is_whole(pg_url)
