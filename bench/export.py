"""Corpus export time and peak memory, on PostgreSQL, for a corpus the size of the paper's (2,281 dialogues) and ten
times that.

Setup: a fresh PostgreSQL database; synthetic tasks run to the end by the simulated expert (every turn with its
rating and utilities); then copies of that run's kept dialogues, turns and ratings in SQL until the corpus holds
the asked number of dialogues. Each export runs in a fresh process (`manage.py shell`), which reports its wall time
and its peak resident memory (ru_maxrss), once for `sotopia-sft` alone and once for every format.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bench.throughput import POSTGRES_URL, SETUP, _environment, _manage

SEED = """
import json, math
from django.db import connection
from dialogues.engine.config import RunConfig
from dialogues.llm.backends import configured_backend
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.models import Dialogue, Run, StepRating, Turn
from dialogues.library.models import Task
from dialogues.runs.lifecycle import run_create

tasks = list(Task.objects.order_by("id"))
base = run_create(created_by=None, name="bench base", config=RunConfig(), tasks=tasks,
                  backend=configured_backend(simulated=True))
run_coroutine(lambda llms: run_to_end(base.pk, llms))
kept_ids = list(base.dialogues.filter(kept=True).order_by("task_id").values_list("task_id", flat=True))
d_cols = [f.column for f in Dialogue._meta.concrete_fields if f.column not in ("id", "run_id")]
t_cols = [f.column for f in Turn._meta.concrete_fields if f.column not in ("id", "dialogue_id")]
r_cols = [f.column for f in StepRating._meta.concrete_fields if f.column not in ("id", "turn_id", "dialogue_id")]
run_fields = {{f.name: getattr(base, f.name) for f in Run._meta.concrete_fields if f.name not in ("id", "created_at")}}
wanted = {dialogues} - len(kept_ids)
copies = 0
with connection.cursor() as cursor:
    while wanted > 0:
        task_ids = kept_ids[:wanted]
        copies += 1
        copy = Run.objects.create(**{{**run_fields, "name": f"bench copy {{copies}}"}})
        copy.tasks.set(task_ids)
        cursor.execute(
            f"INSERT INTO dialogues_dialogue (run_id, {{', '.join(d_cols)}}) "
            f"SELECT %s, {{', '.join(d_cols)}} FROM dialogues_dialogue "
            "WHERE run_id = %s AND kept AND task_id = ANY(%s)", [copy.pk, base.pk, task_ids])
        cursor.execute(
            f"INSERT INTO dialogues_turn (dialogue_id, {{', '.join(t_cols)}}) "
            f"SELECT nd.id, {{', '.join('t.' + c for c in t_cols)}} FROM dialogues_turn t "
            "JOIN dialogues_dialogue od ON od.id = t.dialogue_id "
            "JOIN dialogues_dialogue nd ON nd.run_id = %s AND nd.task_id = od.task_id AND nd.attempt = od.attempt "
            "WHERE od.run_id = %s AND od.kept", [copy.pk, base.pk])
        cursor.execute(
            f"INSERT INTO dialogues_steprating (turn_id, dialogue_id, {{', '.join(r_cols)}}) "
            f"SELECT nt.id, nd.id, {{', '.join('r.' + c for c in r_cols)}} FROM dialogues_steprating r "
            "JOIN dialogues_turn ot ON ot.id = r.turn_id JOIN dialogues_dialogue od ON od.id = ot.dialogue_id "
            "JOIN dialogues_dialogue nd ON nd.run_id = %s AND nd.task_id = od.task_id AND nd.attempt = od.attempt "
            "JOIN dialogues_turn nt ON nt.dialogue_id = nd.id AND nt.index = ot.index "
            "WHERE od.run_id = %s AND od.kept", [copy.pk, base.pk])
        wanted -= len(task_ids)
    cursor.execute("ANALYZE")
print(json.dumps({{"kept": Dialogue.objects.filter(kept=True).count(),
                   "turns": Turn.objects.filter(dialogue__kept=True).count()}}))
"""

EXPORT = """
import json, resource, time
from dialogues.corpora.export import corpus_export
from dialogues.corpora.selection import CorpusFilters
from dialogues.corpora.models import Corpus
from dialogues.corpora.services import corpus_save, override_record
corpus = Corpus.objects.filter(name="bench").first() or corpus_save(
    corpus_id=None, name="bench", description="", version=0, user=None, includes=[], excludes=[],
    filters=CorpusFilters(split="train", passed_only=False, exclude_simulated=False))
override_record(corpus_id=corpus.pk, kind="simulated", reason="benchmark", user=None)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
version = corpus_export(corpus_id=corpus.pk, formats={formats!r})
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "rss_before_mb": before / 1024,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "dialogues": version.manifest["counts"]["dialogues"], "records": version.manifest["counts"]["records"],
    "zip_mb": version.size / 1e6}}))
"""

EXPORT_COLUMNS = [
    ("size", "corpus"),
    ("formats", "formats"),
    ("dialogues", "dialogues"),
    ("records", "SFT records"),
    ("seconds", "seconds"),
    ("target_s", "target s"),
    ("rss_before_mb", "RSS before MB"),
    ("peak_rss_mb", "peak RSS MB"),
    ("target_mb", "target MB"),
    ("zip_mb", "zip MB"),
]


@dataclass(frozen=True)
class ExportScenario:
    sizes: tuple[int, ...] = (2281, 22810)
    tasks: int = 40
    targets: tuple[float, ...] = (10.0, 90.0)


def run_export(scenario: ExportScenario, work_dir: Path) -> list[dict]:
    import psycopg

    rows = []
    for size, target in zip(scenario.sizes, scenario.targets, strict=True):
        db_name = f"omega_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db_name}"')
        db_url = urlparse(POSTGRES_URL)._replace(path=f"/{db_name}").geturl()
        var_dir = work_dir / db_name
        var_dir.mkdir(parents=True, exist_ok=True)
        env = _environment(db_url, db_name, "", var_dir, 8)
        env["OMEGA_SIMULATED_LATENCY_MS"] = "0"
        try:
            _manage(env, "migrate", "--no-input", "-v", "0")
            _manage(env, "shell", "-v", "0", "-c", SETUP.format(tasks=scenario.tasks))
            seeded_at = time.monotonic()
            seeded = json.loads(_manage(env, "shell", "-v", "0", "-c", SEED.format(dialogues=size)).splitlines()[-1])
            print(f"  seeded {seeded['kept']} dialogues in {time.monotonic() - seeded_at:.0f} s", flush=True)
            for formats, label in ((["sotopia-sft"], "sotopia-sft"), (None, "all five")):
                out = _manage(env, "shell", "-v", "0", "-c", EXPORT.format(formats=formats))
                result = json.loads(out.strip().splitlines()[-1])
                rows.append(
                    {
                        "size": f"{size:,}",
                        "formats": label,
                        "dialogues": result["dialogues"],
                        "records": result["records"],
                        "seconds": round(result["seconds"], 1),
                        "target_s": f"< {target:g}" if formats else "—",
                        "rss_before_mb": round(result["rss_before_mb"]),
                        "peak_rss_mb": round(result["peak_rss_mb"]),
                        "target_mb": "< 400",
                        "zip_mb": round(result["zip_mb"], 1),
                    }
                )
                print(f"  {label}: {rows[-1]['seconds']} s, peak {rows[-1]['peak_rss_mb']} MB", flush=True)
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    return rows
