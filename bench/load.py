"""Load: a run with hundreds of dialogues in flight on a Celery worker against the capacity server, while websocket
clients watch dialogue pages through a Daphne web process; half of the clients drop their connection midway and
reconnect saying which turn they have. Measured: every turn written reaches every client watching its dialogue (live
or in the catch-up after reconnecting), and the resident memory of the web and worker processes over the run.

PostgreSQL and Redis of this machine; the same harness backs tests/scaled/test_load.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bench.throughput import POSTGRES_URL, ROOT, SETUP, _environment, _free_port, _manage, _stop, _wait_http

LOAD_COLUMNS = [
    ("dialogues", "dialogues in flight"),
    ("clients", "websocket clients"),
    ("reconnected", "dropped on purpose"),
    ("closed_by_server", "closed by the server"),
    ("turns", "turns watched"),
    ("delivered", "delivered"),
    ("missing", "missing"),
    ("seconds", "seconds"),
    ("web_rss_mb", "web RSS MB (start → a third → end)"),
    ("worker_rss_mb", "worker RSS MB (start → a third → end)"),
]

LAUNCH = """
from dialogues.engine.config import RunConfig
from dialogues.llm.backends import configured_backend
from dialogues.library.models import Task
from dialogues.runs.lifecycle import run_create
from dialogues.runs.lifecycle import run_dispatch
from dialogues.runs.worker import enqueue_steps
run = run_create(created_by=None, name="load", config=RunConfig(max_turns={max_turns}, judge_samples=3),
                 tasks=list(Task.objects.order_by("id")[:{dialogues}]), backend=configured_backend(),
                 max_in_flight={dialogues})
ids = list(run.dialogues.order_by("id").values_list("id", flat=True))
enqueue_steps(run_dispatch(run_id=run.pk))
print(run.pk, ",".join(str(i) for i in ids))
"""

PROGRESS = (
    "SELECT r.status, count(d.id) FILTER (WHERE d.status = 'finished') FROM dialogues_run r "
    "LEFT JOIN dialogues_dialogue d ON d.run_id = r.id WHERE r.id = %s GROUP BY r.status"
)

USER = """
from django.contrib.auth.models import Group, User
u = User.objects.create_user("watcher", password="load-watcher-pw-1")
u.groups.add(Group.objects.get(name="viewer"))
"""


@dataclass(frozen=True)
class LoadScenario:
    dialogues: int = 200
    clients: int = 20
    max_turns: int = 8
    capacity: int = 256
    latency: float = 0.3


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a worker's pool, Daphne's), in MB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def _psql(url: str, sql: str, *args) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


async def _watch(
    ws_url: str, cookie: str, origin: str, dialogue: int, seen: set, stop: asyncio.Event, drop: bool, drops: list
) -> None:
    """Watch one dialogue page as the browser does: reconnect whenever the connection closes, saying the last turn
    seen (`?after=`); with `drop`, also go away once midway on purpose."""
    import websockets

    headers = {"Cookie": cookie, "Origin": origin}
    dropped_on_purpose = not drop
    while not stop.is_set():
        after = max(seen, default=-1)
        try:
            async with websockets.connect(f"{ws_url}/ws/dialogues/{dialogue}/?after={after}",
                                          additional_headers=headers) as ws:  # fmt: skip
                started = time.monotonic()
                while not stop.is_set():
                    if not dropped_on_purpose and time.monotonic() - started > 3:
                        dropped_on_purpose = True
                        break  # the connection drops; turns written meanwhile come with the catch-up
                    try:
                        message = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    seen.update(int(i) for i in re.findall(rf'id="turn-{dialogue}-(\d+)"', message))
        except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake) as exc:
            # a browser reconnects after a dropped handshake too (a busy server may close it before answering)
            drops.append(f"{dialogue}: {exc}")
        if not stop.is_set():
            await asyncio.sleep(2 if dropped_on_purpose else 1)  # away while turns are written


def run_load(scenario: LoadScenario, work_dir: Path) -> dict:
    import psycopg
    import redis  # noqa: F401  (the environment needs it)

    db_name = f"omega_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    db_url = urlparse(POSTGRES_URL)._replace(path=f"/{db_name}").geturl()
    llm_port, web_port = _free_port(), _free_port()
    llm_url, base_url = f"http://127.0.0.1:{llm_port}", f"http://127.0.0.1:{web_port}"
    var_dir = work_dir / db_name
    var_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(db_url, f"omega_load_{uuid.uuid4().hex[:8]}", llm_url, var_dir, scenario.dialogues)
    processes: list[subprocess.Popen] = []
    try:
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "shell", "-v", "0", "-c", SETUP.format(tasks=scenario.dialogues))
        _manage(env, "shell", "-v", "0", "-c", USER)
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.capacity_server", "--port", str(llm_port), "--capacity",
             str(scenario.capacity), "--latency", str(scenario.latency)],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        processes.append(server)
        web = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(web_port)],
            cwd=ROOT, env=env, start_new_session=True, stdout=(var_dir / "web.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(web)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "omega_web", "worker", "--pool", "threads", "--concurrency",
             str(scenario.dialogues), "--without-mingle", "--without-gossip", "--queues", "llm,eval,export,import",
             "--loglevel", "WARNING"],
            cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(worker)
        _wait_http(f"{llm_url}/v1/models")
        _wait_http(f"{base_url}/healthz", timeout=60)
        import httpx

        with httpx.Client(base_url=base_url) as client:
            page = client.get("/accounts/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            client.post("/accounts/login/", data={"username": "watcher", "password": "load-watcher-pw-1",
                        "csrfmiddlewaretoken": token}, headers={"Referer": f"{base_url}/accounts/login/"})  # fmt: skip
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        time.sleep(3)  # the processes settle before the first measurement
        rss_start = (rss_mb(web.pid), rss_mb(worker.pid))
        run_id, ids = _manage(env, "shell", "-v", "0", "-c", LAUNCH.format(
            max_turns=scenario.max_turns, dialogues=scenario.dialogues)).split()  # fmt: skip
        watched = [int(i) for i in ids.split(",")][: scenario.clients]
        seen: dict[int, set] = {d: set() for d in watched}
        drops: list[str] = []
        rss_mid: list[float] = []
        started = time.monotonic()

        async def main() -> None:
            stop = asyncio.Event()
            ws_url = base_url.replace("http://", "ws://")
            tasks = [
                asyncio.create_task(_watch(ws_url, cookie, base_url, d, seen[d], stop, i % 2 == 1, drops))
                for i, d in enumerate(watched)
            ]
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                await asyncio.sleep(1)
                status, done = _psql(db_url, PROGRESS, int(run_id))[0]
                if not rss_mid and done >= scenario.dialogues // 3:  # warm: a third of the run is done
                    rss_mid.extend((rss_mb(web.pid), rss_mb(worker.pid)))
                if status != "running":
                    break
            await asyncio.sleep(2)  # the last fragments
            stop.set()
            await asyncio.gather(*tasks)

        asyncio.run(main())
        seconds = time.monotonic() - started
        rss_end = (rss_mb(web.pid), rss_mb(worker.pid))
        written = {d: set() for d in watched}
        query = "SELECT dialogue_id, index FROM dialogues_turn WHERE dialogue_id = ANY(%s)"
        for dialogue, index in _psql(db_url, query, watched):
            written[dialogue].add(index)
        status = _psql(db_url, "SELECT status FROM dialogues_run WHERE id = %s", int(run_id))[0][0]
    finally:
        for process in reversed(processes):
            _stop(process)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    turns = sum(len(w) for w in written.values())
    missing = sum(len(written[d] - seen[d]) for d in watched)
    return {
        "dialogues": scenario.dialogues,
        "clients": len(watched),
        "reconnected": len(watched) // 2,
        "closed_by_server": len(drops),
        "turns": turns,
        "delivered": turns - missing,
        "missing": missing,
        "seconds": round(seconds, 1),
        "web_rss_mb": f"{rss_start[0]} → {rss_mid[0] if rss_mid else '?'} → {rss_end[0]}",
        "worker_rss_mb": f"{rss_start[1]} → {rss_mid[1] if rss_mid else '?'} → {rss_end[1]}",
        "web_rss": [rss_start[0], rss_mid[0] if rss_mid else None, rss_end[0]],
        "worker_rss": [rss_start[1], rss_mid[1] if rss_mid else None, rss_end[1]],
        "run_status": status,
    }
