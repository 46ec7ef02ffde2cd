"""An evaluation on a real Celery worker with Redis and PostgreSQL: `evaluate --celery` enqueues S_div, the
relevance judge and SOTOPIA-EVAL for a run; the worker embeds the actions (torch only there) and asks the judge — a
real OpenAI-compatible test server — and the job records its progress and counts."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.llm_server import ScriptedLLMServer
from tests.support.processes import app_env, celery_worker, manage
from tests.support.services import postgres_database, query, redis_database, scalar

pytestmark = [pytest.mark.services, pytest.mark.slow]


def judge(purpose: str, body: dict) -> str:
    if purpose == "eval.relevance":
        return json.dumps({"score_justification": "on topic", "score": 0.5})
    agent = {k: {"reasoning": "r", "score": 0} for k in ("believability", "relationship", "knowledge", "secret",
             "social_rules", "financial_and_material_benefits")}  # fmt: skip
    return json.dumps({"agent_1": {**agent, "goal": {"reasoning": "r", "score": 7}},
                       "agent_2": {**agent, "goal": {"reasoning": "r", "score": 5}}})  # fmt: skip


def test_an_evaluation_runs_on_a_worker(tmp_path, sotopia_dir):
    with (
        postgres_database() as pg_url,
        redis_database() as (redis_url, prefix),
        ScriptedLLMServer("judge", responder=judge) as server,
    ):
        env = app_env(tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix,
                      OMEGA_JUDGE_BASE_URLS=server.base_url, OMEGA_JUDGE_MODEL="judge")  # fmt: skip
        assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
        assert manage(env, "import_sotopia", str(sotopia_dir), "-v", "0").returncode == 0
        generated = manage(env, "generate", "--tasks", "all", "--limit", "3", "--simulated", "-v", "0")
        assert generated.returncode == 0, generated.stderr
        with celery_worker(env, concurrency=2):
            result = manage(env, "evaluate", "--run", "1", "--metrics", "sdiv,srel,sotopia", "--celery")
            assert result.returncode == 0 and "Queued for the workers" in result.stdout, result.stderr
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                status = scalar(pg_url, "SELECT status FROM evaluation_evaluationjob")
                if status not in ("queued", "running"):
                    break
                time.sleep(1)
        status, counts, progress = query(pg_url, "SELECT status, counts::text, progress::text FROM "
                                                 "evaluation_evaluationjob")[0]  # fmt: skip
        counts = json.loads(counts)
        assert status == "done", counts
        assert json.loads(progress)["phase"] == "done"
        turns = scalar(pg_url, "SELECT count(*) FROM dialogues_turn t JOIN dialogues_dialogue d ON d.id = "
                               "t.dialogue_id WHERE d.run_id = 1 AND d.kept")  # fmt: skip
        assert counts["srel"]["judged"] == turns and counts["sotopia"]["judged"] == 3
        assert scalar(pg_url, "SELECT count(*) FROM evaluation_relevancescore WHERE score = 0.5") == turns
        assert scalar(pg_url, "SELECT count(*) FROM evaluation_episodescore WHERE goal IN (7, 5)") == 6
        assert scalar(pg_url, "SELECT count(*) FROM evaluation_diversityscore") == 6
        assert {r["purpose"] for r in server.requests if r["purpose"]} == {"eval.relevance", "eval.sotopia"}
