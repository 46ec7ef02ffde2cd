"""S_div throughput: actions per second of a cold evaluation (every action embedded and stored) against raw
`model.encode` on the same texts, and the time of a warm re-evaluation (embeddings and scores stored: nothing to
compute). Targets: cold ≥ 0.9 of raw; warm < 5 s for 1,000 dialogues.

Setup: a fresh embedded SQLite database with synthetic dialogues of 20 turns (two agents, varied sentences), all in
one fresh process (`manage.py shell`), the model loaded once before the timings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.imports import embedded_env
from bench.throughput import _manage

SCRIPT = """
import json, random, time
from dialogues.models import AgentProfile, Dialogue, Run, Scenario, Task, Turn
from evaluation import embeddings
from evaluation.services import sdiv_evaluate
rng = random.Random(5)
words = ("we could share the seats fairly if you help me with the schedule and I cover the costs next week "
         "the garden needs water before the storm arrives tomorrow so bring tools and patience").split()
a = AgentProfile.objects.create(external_id="b1", first_name="Ana", last_name="B", age=30)
b = AgentProfile.objects.create(external_id="b2", first_name="Ben", last_name="B", age=31)
s = Scenario.objects.create(external_id="s", codename="bench", text="Two people talk.", agent1_goal="g1",
                            agent2_goal="g2", relationship="3")
task = Task.objects.create(external_id="t", scenario=s, agent1=a, agent2=b, split="train")
run = Run.objects.create(name="bench", variant="dsi", config={{}}, prompt_set_version="x", backend="simulated",
                         model="m")
ds = Dialogue.objects.bulk_create([Dialogue(run=run, task=task, attempt=i, status="finished", turns_count=20)
                                   for i in range({dialogues})])
texts = []
turns = []
for d in ds:
    for i in range(20):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30))).capitalize() + "."
        texts.append(text)
        turns.append(Turn(dialogue=d, index=i, speaker=i % 2, action_type="speak", argument=text, branch="NSC"))
Turn.objects.bulk_create(turns, batch_size=2000)
ids = [d.pk for d in ds]
embeddings.encode(["warm up the model"])
t0 = time.perf_counter(); embeddings.encode(texts); raw = time.perf_counter() - t0
t0 = time.perf_counter(); cold_counts = sdiv_evaluate(ids); cold = time.perf_counter() - t0
t0 = time.perf_counter(); warm_counts = sdiv_evaluate(ids); warm = time.perf_counter() - t0
print(json.dumps({{"dialogues": len(ids), "actions": len(texts), "raw_s": raw, "cold_s": cold, "warm_s": warm,
                  "encoded": cold_counts.encoded, "warm_encoded": warm_counts.encoded,
                  "warm_recomputed": warm_counts.recomputed}}))
"""

SDIV_COLUMNS = [
    ("dialogues", "dialogues"),
    ("actions", "actions"),
    ("raw_per_s", "raw encode actions/s"),
    ("cold_per_s", "cold S_div actions/s"),
    ("ratio", "cold / raw"),
    ("ratio_target", "target"),
    ("warm_s", "warm re-evaluation s"),
    ("warm_target", "target"),
]


@dataclass(frozen=True)
class SdivScenario:
    dialogues: int = 1000


def run_sdiv(scenario: SdivScenario, work_dir: Path) -> list[dict]:
    var_dir = work_dir / "sdiv"
    var_dir.mkdir(parents=True, exist_ok=True)
    env = embedded_env(var_dir)
    _manage(env, "migrate", "--no-input", "-v", "0")
    result = json.loads(
        _manage(env, "shell", "-v", "0", "-c", SCRIPT.format(dialogues=scenario.dialogues)).splitlines()[-1]
    )
    assert result["encoded"] == result["actions"] and result["warm_encoded"] == 0 and result["warm_recomputed"] == 0
    raw, cold = result["actions"] / result["raw_s"], result["actions"] / result["cold_s"]
    target_warm = 5.0 * result["dialogues"] / 1000
    return [
        {
            "dialogues": result["dialogues"],
            "actions": result["actions"],
            "raw_per_s": round(raw),
            "cold_per_s": round(cold),
            "ratio": round(cold / raw, 3),
            "ratio_target": "≥ 0.9 " + ("met" if cold / raw >= 0.9 else "not met"),
            "warm_s": round(result["warm_s"], 2),
            "warm_target": f"< {target_warm:g} " + ("met" if result["warm_s"] < target_warm else "not met"),
        }
    ]
