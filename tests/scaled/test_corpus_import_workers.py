"""A corpus import on a real Celery worker with Redis and PostgreSQL: `import_corpus --celery` enqueues it, the
worker checks and writes it, its progress is recorded on the job, and importing the same file again adds nothing."""

from __future__ import annotations

import json

import pytest

from bench.imports import write_full, write_sft
from tests.support.processes import app_env, celery_worker, manage
from tests.support.services import postgres_database, query, redis_database, scalar

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_corpus_imports_run_on_a_worker(tmp_path):
    sft, full = tmp_path / "sft.jsonl", tmp_path / "full.jsonl"
    write_sft(sft, 2)
    write_full(full, 2, tasks=5)
    with postgres_database() as pg_url, redis_database() as (redis_url, prefix):
        env = app_env(tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix)
        assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
        with celery_worker(env, concurrency=2):
            for path in (sft, full, full):
                result = manage(env, "import_corpus", str(path), "--celery")
                assert result.returncode == 0, result.stdout + result.stderr
                assert "Import #" in result.stdout and "dialogue" in result.stdout
        jobs = query(pg_url, "SELECT format, status, counts::text, progress::text FROM dialogues_importjob ORDER BY id")
        assert [(f, s) for f, s, _, _ in jobs] == [("sotopia-sft", "succeeded"), ("full", "succeeded")] * 1 + [
            ("full", "succeeded")
        ]
        counts = [json.loads(c) for _, _, c, _ in jobs]
        assert counts[0]["dialogues"] > 0 and counts[1]["dialogues"] > 0
        assert counts[2]["dialogues"] == 0 and counts[2]["already_here"] == counts[1]["dialogues"]
        assert all(json.loads(p)["phase"] == "done" for _, _, _, p in jobs)
        assert (
            scalar(pg_url, "SELECT count(*) FROM dialogues_dialogue") == counts[0]["dialogues"] + counts[1]["dialogues"]
        )
        assert scalar(pg_url, "SELECT count(*) FROM dialogues_run WHERE status = 'importing'") == 0
