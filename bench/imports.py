"""Corpus import time and peak memory for files of growing size: flat memory means the peak stays put as the file
grows.

Setup: synthetic files written here (no shared data): an omega-web full-fidelity JSONL (tasks, then dialogues of
20 turns, each rated with 3 judge samples) and a SOTOPIA SFT JSONL (alpaca records of 20-turn dialogues from both
agents' views, every history repeated as SFT files do). Each import runs in a fresh process on a fresh embedded
SQLite database (`manage.py import_corpus`), which reports its wall time and peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from bench.throughput import _manage

TURNS = 20
WORDS = ("we", "could", "share", "the", "seats", "fairly", "if", "you", "help", "me", "with", "the", "schedule",
         "and", "I", "cover", "the", "costs", "next", "week")  # fmt: skip

IMPORT = """
import json, resource, time
from dialogues.library.services import import_job_run
from dialogues.corpus_import.services import corpus_import_create
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
job = corpus_import_create(created_by=None, origin="cli", path={path!r}, enqueue=False)
job = import_job_run(job_id=job.pk)
elapsed = time.perf_counter() - started
assert job.status == "succeeded", job.problems
print(json.dumps({{"seconds": elapsed, "rss_before_mb": before / 1024,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "dialogues": job.counts["dialogues"], "turns": job.counts["turns"], "records": job.counts["records"]}}))
"""

IMPORT_COLUMNS = [
    ("format", "format"),
    ("file_mb", "file MB"),
    ("records", "records"),
    ("dialogues", "dialogues"),
    ("turns", "turns"),
    ("seconds", "seconds"),
    ("mb_per_s", "MB/s"),
    ("rss_before_mb", "RSS before MB"),
    ("peak_rss_mb", "peak RSS MB"),
]


@dataclass(frozen=True)
class ImportScenario:
    full_mb: tuple[float, ...] = (100, 1000)
    sft_mb: tuple[float, ...] = (100, 1000)


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _agent(i: int) -> dict:
    return {
        "external_id": f"bench-agent-{i}",
        "first_name": f"Agent{i}",
        "last_name": "Bench",
        "age": 30 + i % 30,
        "occupation": "tester",
        "gender": "Woman" if i % 2 else "Man",
        "gender_pronoun": "She/her" if i % 2 else "He/him",
        "public_info": "Likes benchmarks.",
        "big_five": "",
        "moral_values": [],
        "schwartz_personal_values": [],
        "personality_and_values": "Patient.",
        "decision_making_style": "",
        "secret": "None.",
        "mbti": "",
        "source": "bench",
        "partial": False,
    }


def write_full(path: Path, megabytes: float, tasks: int = 40) -> None:
    rng = random.Random(7)
    limit = megabytes * 1e6
    with path.open("w", encoding="utf-8") as out:
        for t in range(tasks):
            scenario = {
                "external_id": f"bench-env-{t}",
                "codename": f"bench_{t}",
                "source": "bench",
                "text": f"Two people settle matter {t}.",
                "agent1_goal": "Get the larger share",
                "agent2_goal": "Get at least half",
                "relationship": str(t % 6),
                "age_constraint": "",
                "occupation_constraint": "",
                "agent_constraint": "",
                "partial": False,
            }
            out.write(
                json.dumps(
                    {
                        "schema": "omega-web/full/2",
                        "type": "task",
                        "external_id": f"bench-task-{t}",
                        "codename": f"bench_{t}",
                        "split": "train",
                        "hard": t % 2 == 0,
                        "source": "bench",
                        "contexts": {},
                        "scenario": scenario["text"],
                        "relationship": scenario["relationship"],
                        "agents": [
                            {
                                "external_id": f"bench-agent-{t % 40}",
                                "name": f"Agent{t % 40} Bench",
                                "goal": "Get the larger share",
                            },
                            {
                                "external_id": f"bench-agent-{(t + 1) % 40}",
                                "name": f"Agent{(t + 1) % 40} Bench",
                                "goal": "Get at least half",
                            },
                        ],
                        "profiles": {"scenario": scenario, "agents": [_agent(t % 40), _agent((t + 1) % 40)]},
                    }
                )
                + "\n"
            )
        n = 0
        while out.tell() < limit:
            turns = []
            for i in range(TURNS):
                samples = [
                    {f"step{k}": {"score": rng.randint(0, 10), "analysis": _text(rng, 18)} for k in range(1, 6)}
                    for _ in range(3)
                ]
                turns.append(
                    {
                        "index": i,
                        "speaker": i % 2,
                        "action_type": "speak",
                        "argument": _text(rng, 30),
                        "corrected": None,
                        "correction_reason": "",
                        "branch": "NSC" if i < 6 else "SSI",
                        "forced": False,
                        "reason": "native start",
                        "nsi_step": "",
                        "proposal": "",
                        "draft": "",
                        "own_utility": None,
                        "other_utility": None,
                        "human": False,
                        "annotations": [],
                        "extra": None,
                        "rating": {
                            "goal_c": 6.0,
                            "goal_p": 5.0,
                            "terminate": False,
                            "valid": 3,
                            "requested": 3,
                            "closing": False,
                            "samples": samples,
                            "rejected": [],
                        },
                    }
                )
            out.write(
                json.dumps(
                    {
                        "schema": "omega-web/full/2",
                        "type": "dialogue",
                        "key": f"bench/dialogue/{n}",
                        "task": f"bench-task-{n % tasks}",
                        "run": {
                            "key": f"bench/run/{n // 1000}",
                            "name": "bench",
                            "variant": "dsi",
                            "model": "bench",
                            "prompt_set_version": "x",
                            "simulated": False,
                        },
                        "attempt": n // tasks,
                        "seed": n,
                        "simulated": False,
                        "kept": True,
                        "filter_passed": True,
                        "final_goal_c": 6.0,
                        "final_goal_p": 5.0,
                        "nsi_used": False,
                        "end_reason": "both_left",
                        "filter_note": "",
                        "source": None,
                        "turns": turns,
                        "decisions": [],
                        "adjudication": None,
                    }
                )
                + "\n"
            )
            n += 1


def write_sft(path: Path, megabytes: float) -> None:
    rng = random.Random(11)
    limit = megabytes * 1e6
    n = 0
    with path.open("w", encoding="utf-8") as out:
        while out.tell() < limit:
            names = (f"Ana{n % 50} Bench", f"Ben{n % 37} Bench")
            scenario = f"Two neighbours share a garden plot (variant {n % 200})."
            goals = ("Get the sunny half of the plot", "Keep the tool shed")
            said = [_text(rng, 30) for _ in range(TURNS)]
            for k in range(TURNS):
                me = k % 2
                history = "".join(f'\nTurn #{i}: {names[i % 2]} said: "{said[i]}"\n' for i in range(k))
                prompt = (
                    f"Imagine you are {names[me]}, your task is to act/speak as {names[me]} would.\n\n"
                    "Here is the context of this interaction:\n"
                    f"Scenario: {scenario}\nParticipants: {names[0]} and {names[1]}\n"
                    f"{names[0]}'s background: {names[0]} is a 40-year-old female gardener. She/her pronouns.\n"
                    f"{names[1]}'s background: {names[1]} is a 41-year-old male baker. He/him pronouns.\n"
                    + "".join(f"{names[i]}'s goal: {goals[i] if i == me else 'Unknown'}\n" for i in (0, 1))
                    + f"Conversation Starts:\n{history}\n.\nYou are at Turn #{k}. Your available action types are ..."
                )
                output = json.dumps({"action_type": "speak", "argument": said[k]})
                out.write(json.dumps({"instruction": prompt, "input": "", "output": output}) + "\n")
            n += 1


def embedded_env(var_dir: Path) -> dict[str, str]:
    """A fresh embedded instance (SQLite in var_dir) for one benchmark process."""
    return {
        "OMEGA_VAR_DIR": str(var_dir),
        "OMEGA_IGNORE_DOTENV": "1",
        "DJANGO_SETTINGS_MODULE": "omega_web.settings",
        "OMEGA_LOG_LEVEL": "WARNING",
        "PATH": "/usr/bin:/bin",
    }


def run_imports(scenario: ImportScenario, work_dir: Path) -> list[dict]:
    rows = []
    for kind, sizes, writer in (("full", scenario.full_mb, write_full), ("sotopia-sft", scenario.sft_mb, write_sft)):
        for megabytes in sizes:
            var_dir = work_dir / f"import-{kind}-{megabytes:g}"
            var_dir.mkdir(parents=True, exist_ok=True)
            path = var_dir / f"corpus-{kind}.jsonl"
            writer(path, megabytes)
            env = embedded_env(var_dir)
            _manage(env, "migrate", "--no-input", "-v", "0")
            result = json.loads(_manage(env, "shell", "-v", "0", "-c", IMPORT.format(path=str(path))).splitlines()[-1])
            size = path.stat().st_size / 1e6
            rows.append(
                {
                    "format": kind,
                    "file_mb": round(size, 1),
                    "records": result["records"],
                    "dialogues": result["dialogues"],
                    "turns": result["turns"],
                    "seconds": round(result["seconds"], 1),
                    "mb_per_s": round(size / result["seconds"], 1),
                    "rss_before_mb": round(result["rss_before_mb"]),
                    "peak_rss_mb": round(result["peak_rss_mb"]),
                }
            )
            print(f"  {kind} {size:.0f} MB: {result['seconds']:.1f} s, peak {result['peak_rss_mb']:.0f} MB", flush=True)
            path.unlink()
    return rows
