"""Throughput of runs on real workers against a server with a vLLM-like capacity.

For each scenario (capacity C, latency per call): a fresh PostgreSQL database and Redis key prefix, synthetic
tasks (half of them deadlock, so DSI runs the negotiation workflow), the capacity server, one Celery worker
process (threads pool), and a DSI run launched as the app launches it. Measured: attempts per minute against
the ideal for the capacity, server utilisation, requests / sequences / prompt tokens per finished attempt, the
worker's CPU per request, and per call kind what vLLM's prefix cache would leave to prefill (bench/prefix_cache.py)
at the stated capacity and with an unlimited cache.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from bench.prefix_cache import DEFAULT_BLOCKS

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("OMEGA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OMEGA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass(frozen=True)
class Scenario:
    capacity: int
    latency: float
    tasks: int
    worker_threads: int  # dialogues in flight, shared by the worker processes
    workers: int = 1
    cache_blocks: int = DEFAULT_BLOCKS
    contexts: str = "synthetic"  # or "sotopia": SOTOPIA's agents and scenarios (read from SOTOPIA_DATA at run time)

    @property
    def label(self) -> str:
        return (
            f"C={self.capacity}, {self.latency:g} s/call, {self.tasks} tasks, {self.worker_threads} in flight, "
            f"{self.workers} worker(s), {self.contexts} contexts"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _environment(db_url: str, prefix: str, llm_url: str, var_dir: Path, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMEGA_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="omega_web.settings",
        OMEGA_IGNORE_DOTENV="1",
        OMEGA_VAR_DIR=str(var_dir),
        OMEGA_DATABASE_URL=db_url,
        OMEGA_REDIS_URL=REDIS_URL,
        OMEGA_REDIS_KEY_PREFIX=prefix,
        OMEGA_LLM_BASE_URLS=llm_url,
        OMEGA_LLM_MODEL="bench-expert",
        OMEGA_LLM_MAX_IN_FLIGHT="1024",
        OMEGA_LLM_STRUCTURED_OUTPUT="0",
        OMEGA_LOG_LEVEL="WARNING",
        OMEGA_CELERY_LOG_LEVEL="WARNING",
        OMEGA_DB_POOL_SIZE="12",
        OMEGA_DB_THREADS="8",
        OMEGA_WORKER_CONCURRENCY=str(threads),
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


SETUP = """
from dialogues.library.models import AgentProfile, Scenario, Task
n = {tasks}
agents = AgentProfile.objects.bulk_create([AgentProfile(external_id=f"bench-agent-{{i}}", first_name=f"Agent{{i}}",
    last_name="Bench", age=30 + i % 30, occupation="tester", gender="Woman" if i % 2 else "Man",
    gender_pronoun="She/her" if i % 2 else "He/him", public_info="Likes benchmarks.",
    personality_and_values="Patient.", secret="None.", source="bench") for i in range(40)])
scenarios = Scenario.objects.bulk_create([Scenario(external_id=f"bench-env-{{i}}", codename=f"bench_{{i}}",
    source="bench", text=f"Two people settle matter {{i}}." + (" [deadlock]" if i % 2 == 0 else ""),
    agent1_goal="Get the larger share", agent2_goal="Get at least half", relationship=str(i % 6))
    for i in range(n)])
Task.objects.bulk_create([Task(external_id=f"bench-task-{{i}}", scenario=scenarios[i], agent1=agents[i % 40],
    agent2=agents[(i + 1) % 40], hard=i % 2 == 0, source="bench", split="train") for i in range(n)])
print(Task.objects.count())
"""

# where the app finds SOTOPIA's files (omega_web/settings.py, OMEGA_SOTOPIA_DIR), read here as the bench's
# subprocesses do not inherit OMEGA_ settings
SOTOPIA_DATA = Path(
    os.environ.get("OMEGA_SOTOPIA_DIR")
    or next(
        (p for p in (ROOT.parent / "shared" / "data" / "sotopia", Path("/work/shared/data/sotopia")) if p.is_dir()),
        ROOT.parent / "shared" / "data" / "sotopia",
    )
)

# SOTOPIA's own agents and scenarios (their text read at run time, never kept in the repository), paired as its
# env-agent combos pair them, one scenario row per task so that half can carry the "[deadlock]" marker. SOTOPIA has
# 450 combos: a task's scenario ends with its number, or the stand-in server's same answers would make the tasks
# that repeat a combo repeat whole dialogues, every prompt cached from the first

SOTOPIA_SETUP = """
import json
from pathlib import Path
from dialogues.library.models import AgentProfile, Scenario, Task
n, data = {tasks}, Path({data!r})
rows = lambda name: [json.loads(line) for line in (data / name).read_text().splitlines() if line.strip()]
profiles = rows("sotopia_agent_profiles.jsonl")
fields = ("first_name", "last_name", "age", "occupation", "gender", "gender_pronoun", "public_info",
          "personality_and_values", "secret")
agents = dict(zip([p["agent_id"] for p in profiles], AgentProfile.objects.bulk_create([AgentProfile(
    external_id=f"bench-{{p['agent_id']}}", source="bench", **{{f: p[f] for f in fields}}) for p in profiles])))
envs = {{e["env_id"]: e for e in rows("sotopia_environment_profiles.jsonl")}}
combos = [c for c in rows("sotopia_env_agent_combo_storages.jsonl") if c["env_id"] in envs
          and all(a in agents for a in c["agent_ids"])]
picked = [combos[i % len(combos)] for i in range(n)]
scenarios = Scenario.objects.bulk_create([Scenario(external_id=f"bench-env-{{i}}",
    codename=f"{{envs[c['env_id']]['codename']}}_{{i}}", source="bench",
    text=envs[c["env_id"]]["scenario"] + f" (Bench task {{i}}.)" + (" [deadlock]" if i % 2 == 0 else ""),
    agent1_goal=envs[c["env_id"]]["agent_goals"][0], agent2_goal=envs[c["env_id"]]["agent_goals"][1],
    relationship=str(envs[c["env_id"]].get("relationship") or 0)) for i, c in enumerate(picked)])
Task.objects.bulk_create([Task(external_id=f"bench-task-{{i}}", scenario=scenarios[i],
    agent1=agents[c["agent_ids"][0]], agent2=agents[c["agent_ids"][1]], hard=i % 2 == 0, source="bench",
    split="train") for i, c in enumerate(picked)])
print(Task.objects.count())
"""

LAUNCH = """
from dialogues.engine.config import RunConfig
from dialogues.llm.backends import configured_backend
from dialogues.library.models import Task
from dialogues.runs.lifecycle import run_create
from dialogues.runs.lifecycle import run_dispatch
from dialogues.runs.worker import enqueue_steps
run = run_create(created_by=None, name="bench", config=RunConfig(), tasks=list(Task.objects.all()),
                 backend=configured_backend(), max_in_flight={in_flight})
enqueue_steps(run_dispatch(run_id=run.pk))
print(run.pk)
"""


def _progress(db_url: str) -> dict:
    import psycopg

    with psycopg.connect(db_url) as conn:
        status = conn.execute("SELECT status FROM dialogues_run").fetchone()[0]
        finished = [
            row[0].timestamp()
            for row in conn.execute("SELECT finished_at FROM dialogues_dialogue WHERE finished_at IS NOT NULL")
        ]
        attempts, failed, passed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE filter_passed) "
            "FROM dialogues_dialogue"
        ).fetchone()
    return {"status": status, "finished": finished, "attempts": attempts, "failed": failed, "passed": passed}


def run_scenario(scenario: Scenario, work_dir: Path, *, timeout: float = 1800) -> dict:
    import psycopg
    import redis

    db_name = f"omega_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db_name}"')
    db_url = urlparse(POSTGRES_URL)._replace(path=f"/{db_name}").geturl()
    prefix = f"omega_bench_{uuid.uuid4().hex[:8]}"
    port = _free_port()
    llm_url = f"http://127.0.0.1:{port}"
    var_dir = work_dir / db_name
    var_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(db_url, prefix, llm_url, var_dir, scenario.worker_threads)
    processes: list[subprocess.Popen] = []
    try:
        _manage(env, "migrate", "--no-input", "-v", "0")
        if scenario.contexts == "sotopia":
            setup = SOTOPIA_SETUP.format(tasks=scenario.tasks, data=str(SOTOPIA_DATA))
        else:
            setup = SETUP.format(tasks=scenario.tasks)
        _manage(env, "shell", "-v", "0", "-c", setup)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.capacity_server",
                "--port",
                str(port),
                "--capacity",
                str(scenario.capacity),
                "--latency",
                str(scenario.latency),
                "--cache-blocks",
                str(scenario.cache_blocks),
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        processes.append(server)
        _wait_http(f"{llm_url}/v1/models")
        workers = []
        threads = -(-scenario.worker_threads // scenario.workers)
        for index in range(scenario.workers):
            worker_log = (var_dir / f"worker-{index}.log").open("w")
            worker = subprocess.Popen(
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
                    str(threads),
                    "--queues",
                    "llm,eval,export,import",
                    "--without-mingle",
                    "--without-gossip",
                    "--hostname",
                    f"bench{index}@%h",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(worker)
            workers.append(worker)
        time.sleep(3)  # the workers connect and start their stepping loops
        httpx.post(f"{llm_url}/metrics/reset")
        cpu_before = sum(_cpu_seconds(w.pid) for w in workers)
        started = time.time()
        _manage(env, "shell", "-v", "0", "-c", LAUNCH.format(in_flight=scenario.worker_threads))
        deadline = time.monotonic() + timeout
        while True:  # polled straight from PostgreSQL: a Django process per poll would eat the CPU measured
            state = _progress(db_url)
            if state["status"] != "running" or time.monotonic() > deadline:
                break
            if any(w.poll() is not None for w in workers):
                raise RuntimeError(f"a worker died:\n{(var_dir / 'worker-0.log').read_text()[-3000:]}")
            time.sleep(2)
        cpu = sum(_cpu_seconds(w.pid) for w in workers) - cpu_before
        served = httpx.get(f"{llm_url}/metrics").json()
    finally:
        for process in reversed(processes):
            _stop(process)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    return _results(scenario, state, served, cpu, served["first_request"] or started)


def _results(scenario: Scenario, state: dict, served: dict, cpu: float, started: float) -> dict:
    finished = sorted(t - started for t in state["finished"])
    attempts = len(finished)
    elapsed = finished[-1] if finished else 0.0
    per_attempt = {
        "requests": served["requests"] / max(attempts, 1),
        "sequences": served["sequences"] / max(attempts, 1),
        "prompt_tokens": served["prompt_tokens"] / max(attempts, 1),
    }
    sequences_per_second = scenario.capacity / scenario.latency
    ideal = sequences_per_second / max(per_attempt["sequences"], 1e-9) * 60
    achieved = attempts / elapsed * 60 if elapsed else 0.0
    # the middle of the run, once ramp-up is over and before the last attempts trickle in
    lo, hi = int(attempts * 0.2), int(attempts * 0.8)
    middle = (hi - lo) / (finished[hi] - finished[lo]) * 60 if attempts > 10 and finished[hi] > finished[lo] else 0
    return {
        "scenario": scenario.label,
        "capacity": scenario.capacity,
        "latency_s": scenario.latency,
        "tasks": scenario.tasks,
        "worker_threads": scenario.worker_threads,
        "workers": scenario.workers,
        "attempts": attempts,
        "failed": state["failed"],
        "passed": state["passed"],
        "run_status": state["status"],
        "elapsed_s": round(elapsed, 1),
        "attempts_per_min": round(achieved, 1),
        "ideal_attempts_per_min": round(ideal, 1),
        "ratio": round(achieved / ideal, 3) if ideal else 0.0,
        "ratio_middle_60pct": round(middle / ideal, 3) if ideal else 0.0,
        "server_utilisation": round(served["busy_slot_seconds"] / (scenario.capacity * max(elapsed, 1e-9)), 3),
        "requests_per_attempt": round(per_attempt["requests"], 1),
        "sequences_per_attempt": round(per_attempt["sequences"], 1),
        "prompt_tokens_per_attempt": round(per_attempt["prompt_tokens"]),
        "client_cpu_ms_per_request": round(cpu * 1000 / max(served["requests"], 1), 2),
        "mean_queue_wait_s": round(served["mean_queue_wait"], 3),
        "cache": cache_rows(served["cache"], attempts),
    }


# call kinds as the cache table groups the server's purposes (X-Omega-Purpose)
CALL_KINDS = {
    "action.native": "action",
    "action.ssi": "action",
    "rating": "rating",
    "nsi.style_transfer": "style transfer",
    "eval.relevance": "judges",
    "eval.sotopia": "judges",
}


def cache_rows(cache: dict, attempts: int) -> dict:
    """The server's prefix-cache tallies per finished attempt, by call kind (each negotiation step its own), with
    every kind together last."""
    kinds: dict[str, dict[str, int]] = {}
    for purpose, tally in cache["by_purpose"].items():
        kind = CALL_KINDS.get(purpose, purpose)
        into = kinds.setdefault(kind, dict.fromkeys(tally, 0))
        for key, value in tally.items():
            into[key] += value
    kinds["all"] = {key: sum(k[key] for k in kinds.values()) for key in next(iter(kinds.values()), {})}
    rows = []
    for kind, t in kinds.items():
        prompt = t.get("prompt_tokens", 0)
        rows.append(
            {
                "kind": kind,
                "requests": round(t.get("requests", 0) / max(attempts, 1), 1),
                "sequences": round(t.get("sequences", 0) / max(attempts, 1), 1),
                "prompt_tokens": round(prompt / max(attempts, 1)),
                "prefill_tokens": round(t.get("prefill_tokens", 0) / max(attempts, 1)),
                "prefill_share": round(t.get("prefill_tokens", 0) / prompt, 3) if prompt else 0.0,
                "hit_ratio": round(1 - t.get("prefill_tokens", 0) / prompt, 3) if prompt else 0.0,
                "prefill_tokens_unlimited": round(t.get("prefill_tokens_unlimited", 0) / max(attempts, 1)),
                "hit_ratio_unlimited": round(1 - t.get("prefill_tokens_unlimited", 0) / prompt, 3) if prompt else 0.0,
            }
        )
    return {
        "tokenizer": cache["tokenizer"],
        "capacity_blocks": cache["capacity_blocks"],
        "block_tokens": cache["block_tokens"],
        "evicted_blocks": cache["evicted_blocks"],
        "per_attempt": rows,
    }
