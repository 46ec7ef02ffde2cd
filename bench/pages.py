"""Page speed and live-update delay, in the scaled mode (PostgreSQL, Redis, Daphne serving the app).

Setup: a fresh PostgreSQL database; synthetic tasks (half of them deadlock, so DSI runs the negotiation
workflow) run to the end by the simulated expert, so every turn carries its real details (ratings with all
judge samples, utilities, drafts, LLM calls); then copies of that run in SQL until the library holds the asked
number of dialogues, turns included.

Pages: `manage.py serve --no-worker` (Daphne) on that database; N concurrent clients, each logged in, request
a page over and over. Server time is Django's own (the `Server-Timing` header); client time adds queueing in
the server process and the network.

Live updates: clients hold the websockets of several paused dialogues open while another process steps them by
hand, as the "Next turn" button does; the delay is from the turn's row being written (its `created_at`, taken
inside the transaction, so the figure errs on the long side) to the turn's fragment reaching each client.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from bench.throughput import POSTGRES_URL, REDIS_URL, ROOT, SETUP, _environment, _free_port, _manage, _stop, _wait_http

PASSWORD = "bench-password-1"

SEED = """
import json, math
from django.contrib.auth.models import Group, User
from django.db import connection
from dialogues.engine.config import RunConfig
from dialogues.llm.backends import configured_backend
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.models import Dialogue, Run, Turn
from dialogues.library.models import Task
from dialogues.runs.lifecycle import run_create

user = User.objects.create_user("bench", password={password!r})
user.groups.add(Group.objects.get(name="researcher"))
tasks = list(Task.objects.order_by("id"))
base = run_create(created_by=None, name="bench base", config=RunConfig(), tasks=tasks,
                  backend=configured_backend(simulated=True))
run_coroutine(lambda llms: run_to_end(base.pk, llms))
per_run = base.dialogues.count()
d_cols = [f.column for f in Dialogue._meta.concrete_fields if f.column not in ("id", "run_id")]
t_cols = [f.column for f in Turn._meta.concrete_fields if f.column not in ("id", "dialogue_id")]
run_fields = {{f.name: getattr(base, f.name) for f in Run._meta.concrete_fields if f.name not in ("id", "created_at")}}
with connection.cursor() as cursor:
    for k in range(max(0, math.ceil(({dialogues} - per_run) / per_run))):
        copy = Run.objects.create(**{{**run_fields, "name": f"bench copy {{k + 1}}"}})
        copy.tasks.set(tasks)
        cursor.execute(
            f"INSERT INTO dialogues_dialogue (run_id, {{', '.join(d_cols)}}) "
            f"SELECT %s, {{', '.join(d_cols)}} FROM dialogues_dialogue WHERE run_id = %s", [copy.pk, base.pk])
        cursor.execute(
            f"INSERT INTO dialogues_turn (dialogue_id, {{', '.join(t_cols)}}) "
            f"SELECT nd.id, {{', '.join('t.' + c for c in t_cols)}} FROM dialogues_turn t "
            "JOIN dialogues_dialogue od ON od.id = t.dialogue_id "
            "JOIN dialogues_dialogue nd ON nd.run_id = %s AND nd.task_id = od.task_id AND nd.attempt = od.attempt "
            "WHERE od.run_id = %s", [copy.pk, base.pk])
    cursor.execute("ANALYZE")
shown = base.dialogues.filter(nsi_used=True, turns_count__lte=20).order_by("-turns_count", "id").first()
live = run_create(created_by=None, name="bench live", config=RunConfig(), tasks=tasks[:{live}],
                  backend=configured_backend(simulated=True), start_paused=True)
said = Turn.objects.filter(dialogue=shown, action_type="speak").first().argument
word = max(said.split(), key=len).strip(".,;:!?")
print(json.dumps({{"run": base.pk, "dialogue": shown.pk, "turns": shown.turns_count, "calls": shown.calls_count,
    "dialogues": Dialogue.objects.count(), "all_turns": Turn.objects.count(), "word": word,
    "live": list(live.dialogues.values_list("pk", flat=True))}}))
"""

STEP = """
from dialogues.runs.driving import run_coroutine, step_dialogue
from dialogues.runs.models import Dialogue
ids = {ids}
async def main(llms):
    import asyncio
    for _ in range(200):
        open_ = [pk for pk in ids if (await Dialogue.objects.aget(pk=pk)).status == "paused"]
        if not open_:
            return
        for pk in open_:
            await step_dialogue(pk, llms)
            await asyncio.sleep({pause})
run_coroutine(main)
"""


@dataclass(frozen=True)
class PagesScenario:
    dialogues: int = 10_000
    tasks: int = 40
    clients: int = 20
    requests_per_client: int = 25
    live_dialogues: int = 4
    listeners_per_dialogue: int = 3
    web_processes: int = os.cpu_count() or 1  # as deployed: one web process per core, behind a proxy
    web_concurrency: int | None = None  # OMEGA_WEB_CONCURRENCY of each web process (None: the default)


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _log_in(base_url: str) -> httpx.Cookies:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        form = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        answer = client.post(
            "/accounts/login/",
            data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"bench login failed: {answer.status_code}")
        return client.cookies


async def _hammer(base_urls: list[str], cookies: httpx.Cookies, path: str, clients: int, per_client: int) -> dict:
    """`clients` clients in a closed loop, spread over the web processes as a round-robin proxy would."""
    server, seen = [], []

    async def one_client(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=60) as client:
            for i in range(per_client + 2):
                started = time.perf_counter()
                answer = await client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"{path} answered {answer.status_code}")
                if i >= 2:  # the first two of each client warm caches and connections
                    seen.append(elapsed)
                    server.append(float(answer.headers["Server-Timing"].split("dur=")[1]))

    started = time.perf_counter()
    await asyncio.gather(*(one_client(base_urls[i % len(base_urls)]) for i in range(clients)))
    wall = time.perf_counter() - started
    return {
        "requests": len(seen),
        "clients": clients,
        "server_p50_ms": round(_percentile(server, 0.5), 1),
        "server_p95_ms": round(_percentile(server, 0.95), 1),
        "client_p50_ms": round(_percentile(seen, 0.5), 1),
        "client_p95_ms": round(_percentile(seen, 0.95), 1),
        "requests_per_s": round(len(seen) / wall, 1),
    }


async def _listen(ws_url: str, cookie: str, origin: str, dialogue: int, arrivals: dict, ready: asyncio.Event, stop):
    import websockets

    headers = {"Cookie": cookie, "Origin": origin}
    async with websockets.connect(f"{ws_url}/ws/dialogues/{dialogue}/?after=-1", additional_headers=headers) as ws:
        await ws.recv()  # the state now
        ready.set()
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            for index in re.findall(rf'id="turn-{dialogue}-(\d+)"', message):
                arrivals.setdefault((dialogue, int(index)), []).append(now)


def _turn_times(db_url: str, dialogues: list[int]) -> dict[tuple[int, int], float]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT dialogue_id, index, created_at FROM dialogues_turn WHERE dialogue_id = ANY(%s)", [dialogues]
        ).fetchall()
    return {(d, i): created.timestamp() for d, i, created in rows}


def _live_delay(env: dict, base_url: str, cookies: httpx.Cookies, db_url: str, live: list[int], listeners: int):
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    ws_url = base_url.replace("http://", "ws://")
    arrivals: dict[tuple[int, int], list[float]] = {}

    async def main() -> None:
        stop = asyncio.Event()
        readies = []
        tasks = []
        for dialogue in live:
            for _ in range(listeners):
                ready = asyncio.Event()
                readies.append(ready)
                tasks.append(asyncio.create_task(_listen(ws_url, cookie, base_url, dialogue, arrivals, ready, stop)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), timeout=30)
        driver = threading.Thread(
            target=_manage, args=(env, "shell", "-v", "0", "-c", STEP.format(ids=live, pause=0.05))
        )
        driver.start()
        while driver.is_alive():
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # the last fragments
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    written = _turn_times(db_url, live)
    delays = [(arrived - written[key]) * 1000 for key, times in arrivals.items() if key in written for arrived in times]
    missing = sum(1 for key in written for _ in range(listeners)) - len(delays)
    return {
        "page": f"websocket: turn written → fragment at the client ({len(live)} dialogues × {listeners} pages)",
        "requests": len(delays),
        "clients": len(live) * listeners,
        "client_p50_ms": round(_percentile(delays, 0.5), 1),
        "client_p95_ms": round(_percentile(delays, 0.95), 1),
        "client_max_ms": round(max(delays, default=0), 1),
        "missing": missing,
        "target": "p95 < 250",
    }


def run_pages(scenario: PagesScenario, work_dir: Path) -> tuple[dict, list[dict]]:
    import psycopg
    import redis

    db_name = f"omega_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    db_url = urlparse(POSTGRES_URL)._replace(path=f"/{db_name}").geturl()
    prefix = f"omega_bench_{uuid.uuid4().hex[:8]}"
    var_dir = work_dir / db_name
    var_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(db_url, prefix, "", var_dir, 8)
    env["OMEGA_SIMULATED_LATENCY_MS"] = "0"
    if scenario.web_concurrency:
        env["OMEGA_WEB_CONCURRENCY"] = str(scenario.web_concurrency)
    servers: list[subprocess.Popen] = []
    try:
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "shell", "-v", "0", "-c", SETUP.format(tasks=scenario.tasks))
        seed_started = time.monotonic()
        seeded = json.loads(
            _manage(
                env,
                "shell",
                "-v",
                "0",
                "-c",
                SEED.format(password=PASSWORD, dialogues=scenario.dialogues, live=scenario.live_dialogues),
            )
            .strip()
            .splitlines()[-1]
        )
        seeded["seed_seconds"] = round(time.monotonic() - seed_started, 1)
        base_urls = []
        for index in range(scenario.web_processes):
            port = _free_port()
            log = (var_dir / f"serve-{index}.log").open("w")
            servers.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "serve", "--no-worker", "--port", str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            base_urls.append(f"http://127.0.0.1:{port}")
        for base_url in base_urls:
            _wait_http(f"{base_url}/healthz")
        base_url = base_urls[0]
        cookies = _log_in(base_url)
        pages = [
            (f"dialogue page ({seeded['turns']} turns, every detail)", f"/dialogues/{seeded['dialogue']}/"),
            (f"dialogue list ({seeded['dialogues']} dialogues)", "/dialogues/"),
            ("dialogue list: NSI, passed, by goal_c", "/dialogues/?strategy=nsi&passed=1&sort=-final_goal_c"),
            (f"dialogue list: words in {seeded['all_turns']} turns", f"/dialogues/?text={seeded['word']}"),
            ("dialogue list: page 100", "/dialogues/?page=100"),
            ("run page (its dialogues)", f"/runs/{seeded['run']}/"),
            ("runs list", "/runs/"),
        ]
        rows = []
        for label, path in pages:
            print(f"  {label} …", flush=True)
            row = asyncio.run(_hammer(base_urls, cookies, path, scenario.clients, scenario.requests_per_client))
            rows.append({"page": label, **row, "target": "p95 < 150"})
        print("  websocket delay …", flush=True)
        rows.append(_live_delay(env, base_url, cookies, db_url, seeded["live"], scenario.listeners_per_dialogue))
    finally:
        for server in servers:
            _stop(server)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    return seeded, rows


PAGE_COLUMNS = [
    ("page", "page"),
    ("clients", "clients"),
    ("requests", "requests"),
    ("server_p50_ms", "server p50 ms"),
    ("server_p95_ms", "server p95 ms"),
    ("client_p50_ms", "client p50 ms"),
    ("client_p95_ms", "client p95 ms"),
    ("requests_per_s", "req/s"),
    ("client_max_ms", "max ms"),
    ("missing", "missing"),
    ("target", "target"),
]
