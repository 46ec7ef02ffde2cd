"""Judged evaluation throughput: an evaluation job (relevance judge + SOTOPIA-EVAL) over synthetic dialogues
against the capacity server (C sequences in service, a fixed latency per call), compared with the ideal time of
the same requests on that server, (requests / C) × latency. The job keeps the server full by sending a chunk's
requests together; this measures what chunking, prompt building and writing cost around the judge.

Setup: a fresh embedded SQLite database, dialogues of 20 turns, the job run in one process (`manage.py shell`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.imports import embedded_env
from bench.throughput import ROOT, _free_port, _manage, _stop, _wait_http, cache_rows

SCRIPT = """
import json, time
from dialogues.models import AgentProfile, Dialogue, Run, Scenario, Task, Turn
from evaluation.jobs import job_create, job_run
a = AgentProfile.objects.create(external_id="b1", first_name="Ana", last_name="B", age=30)
b = AgentProfile.objects.create(external_id="b2", first_name="Ben", last_name="B", age=31)
s = Scenario.objects.create(external_id="s", codename="bench", text="Two people talk.", agent1_goal="Share the seats",
                            agent2_goal="Get the window seat", relationship="3")
task = Task.objects.create(external_id="t", scenario=s, agent1=a, agent2=b, split="train")
run = Run.objects.create(name="bench", variant="dsi", config={{}}, prompt_set_version="x", backend="simulated",
                         model="m")
ds = Dialogue.objects.bulk_create([Dialogue(run=run, task=task, attempt=i, status="finished", turns_count=20)
                                   for i in range({dialogues})])
Turn.objects.bulk_create([Turn(dialogue=d, index=i, speaker=i % 2, action_type="speak", branch="NSC",
                               argument=f"Line {{i}} of dialogue {{d.pk}} about the seats and the trip.")
                          for d in ds for i in range(20)], batch_size=2000)
job = job_create(scope="run", dialogue_ids=[d.pk for d in ds], metrics=["srel", "sotopia"], run=run)
t0 = time.perf_counter(); job = job_run(job.pk); elapsed = time.perf_counter() - t0
print(json.dumps({{"dialogues": len(ds), "status": job.status, "elapsed_s": elapsed, "counts": job.counts,
                  "problems": len(job.problems)}}))
"""

JUDGE_COLUMNS = [
    ("dialogues", "dialogues"),
    ("requests", "judge requests"),
    ("capacity", "server C"),
    ("latency_s", "latency s"),
    ("elapsed_s", "seconds"),
    ("ideal_s", "ideal s"),
    ("ratio", "ideal / actual"),
    ("requests_per_s", "requests/s"),
]


@dataclass(frozen=True)
class JudgeScenario:
    dialogues: int = 500
    capacity: int = 256
    latency: float = 0.5


def run_judges(scenario: JudgeScenario, work_dir: Path) -> list[dict]:
    var_dir = work_dir / "judges"
    var_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**embedded_env(var_dir), "OMEGA_JUDGE_BASE_URLS": url, "OMEGA_JUDGE_MODEL": "bench-expert"}
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.capacity_server", "--port", str(port), "--capacity", str(scenario.capacity),
         "--latency", str(scenario.latency)],
        cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_http(f"{url}/v1/models")
        _manage(env, "migrate", "--no-input", "-v", "0")
        out = _manage(env, "shell", "-v", "0", "-c", SCRIPT.format(dialogues=scenario.dialogues))
        result = json.loads(out.splitlines()[-1])
        served = httpx.get(f"{url}/metrics").json()
    finally:
        _stop(server)
    assert result["status"] == "done" and result["problems"] == 0, result
    requests = result["counts"]["srel"]["requests"] + result["counts"]["sotopia"]["requests"]
    assert requests == served["requests"], (requests, served)
    ideal = requests / scenario.capacity * scenario.latency
    return [
        {
            "dialogues": result["dialogues"],
            "requests": requests,
            "capacity": scenario.capacity,
            "latency_s": scenario.latency,
            "elapsed_s": round(result["elapsed_s"], 1),
            "ideal_s": round(ideal, 1),
            "ratio": round(ideal / result["elapsed_s"], 2),
            "requests_per_s": round(requests / result["elapsed_s"], 1),
            "cache": cache_rows(served["cache"], result["dialogues"]),  # per evaluated dialogue
        }
    ]
