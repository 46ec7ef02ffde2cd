"""Scaled mode for real: PostgreSQL for the database, Redis for Celery and the channel layer, and separate
processes for the web server and the worker, as docs/operations.md describes."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
from websockets.sync.client import connect as ws_connect

from tests.support.processes import ROOT, app_env, celery_worker, login, manage, serve
from tests.support.services import postgres_database, redis_database

pytestmark = [pytest.mark.services, pytest.mark.slow]
ADMIN_PASSWORD = "scaled-test-password-1"


def count(url: str, table: str, where: str = "") -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0]


@pytest.fixture
def pg_url():
    with postgres_database() as url:
        yield url


@pytest.fixture
def redis(pg_url):
    with redis_database() as (url, prefix):
        yield url, prefix


def test_importer_on_real_data_under_postgres(tmp_path, pg_url, sotopia_dir):
    env = app_env(tmp_path, OMEGA_DATABASE_URL=pg_url)
    assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
    first = manage(env, "import_sotopia", str(sotopia_dir))
    assert first.returncode == 0, first.stderr
    assert "Library: 40 agents, 90 scenarios, 120 relationships, 450 tasks, 70 hard." in first.stdout
    assert [
        count(pg_url, t)
        for t in ("dialogues_agentprofile", "dialogues_scenario", "dialogues_relationship", "dialogues_task")
    ] == [40, 90, 120, 450]
    assert count(pg_url, "dialogues_task", "WHERE hard") == 70
    second = manage(env, "import_sotopia", str(sotopia_dir))
    assert re.search(r"tasks\s+0 created\s+0 updated\s+450 unchanged", second.stdout), second.stdout

    broken = tmp_path / "broken"
    broken.mkdir()
    for path in sotopia_dir.glob("sotopia_*"):
        (broken / path.name).write_bytes(path.read_bytes())
    combos = broken / "sotopia_env_agent_combo_storages.jsonl"
    combos.write_text(combos.read_text().replace('"env_id": "', '"env_id": "X', 1))
    third = manage(env, "import_sotopia", str(broken), "--split", "train")
    assert third.returncode != 0
    assert "sotopia_env_agent_combo_storages.jsonl, line 1, field 'env_id': unknown scenario" in third.stderr
    assert count(pg_url, "dialogues_task", "WHERE split = 'train'") == 0  # nothing changed


def test_worker_process_on_redis_imports_and_the_page_hears_it_through_channels_redis(
    tmp_path, pg_url, redis, sotopia_dir
):
    redis_url, prefix = redis
    env = app_env(
        tmp_path,
        OMEGA_DATABASE_URL=pg_url,
        OMEGA_REDIS_URL=redis_url,
        OMEGA_REDIS_KEY_PREFIX=prefix,
        OMEGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    for command in (["migrate", "--no-input", "-v", "0"], ["ensure_admin"]):
        assert manage(env, *command).returncode == 0
    with (
        celery_worker(env) as worker,
        serve(env, "--no-worker") as served,
        httpx.Client(base_url=served.url, timeout=10) as client,
    ):
        assert "no worker in this process" in served.output()
        login(client, "admin", ADMIN_PASSWORD)
        form = client.get("/imports/new/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        names = {
            "agents": "sotopia_agent_profiles.jsonl",
            "scenarios": "sotopia_environment_profiles.jsonl",
            "relationships": "sotopia_relationship_profiles.jsonl",
            "tasks": "sotopia_env_agent_combo_storages.jsonl",
            "hard": "sotopia_hard_subset_derived.json",
        }
        files = {kind: (name, (sotopia_dir / name).read_bytes()) for kind, name in names.items()}
        answer = client.post(
            "/imports/new/", data={"csrfmiddlewaretoken": token, "split": "eval", "source": "sotopia"}, files=files
        )
        assert answer.status_code == 302, answer.text
        job_id = int(answer.headers["location"].rstrip("/").rsplit("/", 1)[1])

        ws_url = served.url.replace("http://", "ws://") + f"/ws/imports/{job_id}/"
        with ws_connect(
            ws_url, additional_headers={"Cookie": f"sessionid={client.cookies['sessionid']}"}, origin=served.url
        ) as ws:
            messages = []
            deadline = time.monotonic() + 60
            while not any('data-status="succeeded"' in m for m in messages) and time.monotonic() < deadline:
                messages.append(ws.recv(timeout=deadline - time.monotonic()))
        assert 'data-status="succeeded"' in messages[-1], messages
        assert worker.poll() is None
    # The worker process did the work: its log shows the task, and PostgreSQL holds the rows.
    assert count(pg_url, "dialogues_task") == 450 and count(pg_url, "dialogues_task", "WHERE hard") == 70
    logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    assert "dialogues.tasks.import_job_run_task" in logs and "succeeded" in logs


def test_redis_channel_layer_round_trip_between_processes(tmp_path, pg_url, redis):
    """A message sent through channels-redis by one process arrives in another."""
    redis_url, prefix = redis
    env = app_env(tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix)
    receiver = (
        "import asyncio, sys\n"
        "from channels.layers import get_channel_layer\n"
        "async def main():\n"
        "    layer = get_channel_layer()\n"
        "    await layer.group_add('roundtrip', 'probe.listener')\n"
        "    print('listening', flush=True)\n"
        "    message = await asyncio.wait_for(layer.receive('probe.listener'), 30)\n"
        "    print('got', message['text'], flush=True)\n"
        "asyncio.run(main())\n"
    )
    listener = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", receiver],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout.readline().strip() == "listening", listener.stderr.read()
        sender = (
            "from asgiref.sync import async_to_sync; from channels.layers import get_channel_layer; "
            "async_to_sync(get_channel_layer().group_send)('roundtrip', {'type': 'x', 'text': 'hello'})"
        )
        assert manage(env, "shell", "-v", "0", "-c", sender).returncode == 0
        out, err = listener.communicate(timeout=30)
        assert out.strip() == "got hello", err
    finally:
        listener.kill()
