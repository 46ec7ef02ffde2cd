"""A model server that misbehaves during a run on real Celery workers with PostgreSQL and Redis: HTTP 500s, answers
slower than the client's timeout, empty choices, truncated and non-JSON bodies, the model name no longer served for
a while, and a full outage. The run still finishes; every dialogue that failed says why; turns are contiguous and
unique; no LLM call is counted twice; and no failed attempt reaches an export."""

from __future__ import annotations

import itertools
import json
import threading
import zipfile

import pytest

from tests.support import llm_answers
from tests.support.llm_server import Reply, ScriptedLLMServer
from tests.support.processes import FAST_LEASES, app_env, celery_worker, manage
from tests.support.services import postgres_database, query, redis_database, scalar

pytestmark = [pytest.mark.services, pytest.mark.slow]
SECRET = "sk-omega-fault-test-91c2"


class Misbehaving:
    """Wraps a well-behaved responder; every request gets a number, and some numbers get a fault."""

    def __init__(self) -> None:
        self.good = llm_answers.responder(
            lambda turn, n: llm_answers.uniform(9, 9, n, end=turn >= 10),
            proposals=itertools.cycle(["revise_proposal", "confirm_proposal"]),
        )
        self.count = itertools.count(1)
        self.lock = threading.Lock()
        self.faults: dict[str, int] = {}

    def _fault(self, kind: str, reply: Reply | str) -> Reply | str:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        return reply

    def __call__(self, purpose: str, body: dict) -> Reply | str | list[str]:
        with self.lock:
            n = next(self.count)
        if 80 <= n < 100:
            return self._fault("outage", Reply(status=503))
        if 30 <= n < 33:  # the model is not served for a while: vLLM answers 404 for its name, not retried
            return self._fault(
                "wrong model", Reply(status=404, body=json.dumps({"error": "The model `test-model` does not exist."}))
            )
        if n % 13 == 0:
            return self._fault("500", Reply(status=500))
        if n % 17 == 0:
            return self._fault("timeout", Reply(delay=2.5, texts=["late"]))
        if n % 19 == 0:
            return self._fault("empty choices", Reply(no_choices=True))
        if n % 23 == 0:
            return self._fault("truncated", Reply(body='{"id": "x", "choices": [{"message": {"content": "{\\"act'))
        if n % 29 == 0:
            return self._fault("not json", Reply(body="<html>502 Bad Gateway</html>"))
        return self.good(purpose, body)


def test_a_misbehaving_model_server_loses_nothing(tmp_path):
    with (
        postgres_database() as pg_url,
        redis_database() as (redis_url, prefix),
        ScriptedLLMServer("test-model") as server,
    ):
        faults = Misbehaving()
        server.responder = faults
        env = app_env(tmp_path, OMEGA_DATABASE_URL=pg_url, OMEGA_REDIS_URL=redis_url, OMEGA_REDIS_KEY_PREFIX=prefix,
                      OMEGA_LLM_BASE_URLS=server.base_url, OMEGA_LLM_MODEL="test-model", OMEGA_LLM_TIMEOUT="1",
                      OMEGA_LLM_TRANSPORT_RETRIES="1", OMEGA_LLM_API_KEY=SECRET, **FAST_LEASES)  # fmt: skip
        assert manage(env, "migrate", "--no-input", "-v", "0").returncode == 0
        assert manage(env, "load_demo", "-v", "0").returncode == 0
        with celery_worker(env, concurrency=8):
            result = manage(env, "generate", "--tasks", "all", "--celery", "--judge-samples", "3", "--attempts", "3",
                            "--max-turns", "12", timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        # the key was sent with every request and appears in no output or log of ours
        assert all(r["authorization"] == f"Bearer {SECRET}" for r in server.requests if r["purpose"])
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log"))
        assert logs and SECRET not in logs + result.stdout + result.stderr
        kinds = {"outage", "wrong model", "500", "timeout", "empty choices", "truncated", "not json"}
        assert kinds <= set(faults.faults), (faults.faults, len(server.requests))
        assert scalar(pg_url, "SELECT status FROM dialogues_run") == "finished"
        statuses = dict(query(pg_url, "SELECT status, count(*) FROM dialogues_dialogue GROUP BY status"))
        assert set(statuses) <= {"finished", "failed"} and statuses.get("failed", 0) > 0, statuses
        # every failure says why, with the server's words
        reasons = [r for (r,) in query(pg_url, "SELECT failure_reason FROM dialogues_dialogue WHERE status='failed'")]
        assert all(reasons) and any("HTTP 503" in r or "HTTP 404" in r or "no usable answer" in r for r in reasons)
        # turns contiguous from 0 and alternating; no call written twice; counters agree with rows
        assert query(pg_url, "SELECT dialogue_id FROM dialogues_turn GROUP BY dialogue_id "
                             "HAVING count(*) <> max(index) + 1 OR min(index) <> 0") == []  # fmt: skip
        assert scalar(pg_url, "SELECT count(*) FROM dialogues_turn WHERE speaker <> index % 2") == 0
        assert query(pg_url, "SELECT dialogue_id, turn_index, purpose FROM dialogues_llmcall GROUP BY dialogue_id, "
                             "turn_index, purpose HAVING count(DISTINCT step_attempt) > 1") == []  # fmt: skip
        assert query(pg_url, "SELECT d.id FROM dialogues_dialogue d LEFT JOIN dialogues_llmcall c ON c.dialogue_id = "
                             "d.id GROUP BY d.id, d.calls_count HAVING count(c.id) <> d.calls_count") == []  # fmt: skip
        # no failed attempt is kept or exported
        assert scalar(pg_url, "SELECT count(*) FROM dialogues_dialogue WHERE status='failed' AND kept") == 0
        failed = {i for (i,) in query(pg_url, "SELECT id FROM dialogues_dialogue WHERE status='failed'")}
        script = (
            "from dialogues.models import Corpus, Dialogue; from dialogues.corpora.selection import CorpusFilters; "
            f"Corpus.objects.create(name='all', includes={sorted(failed)}, filters=CorpusFilters(split='', "
            "kept_only=False, passed_only=False, exclude_simulated=False).to_json())"
        )
        assert manage(env, "shell", "-c", script).returncode == 0
        out = tmp_path / "export"
        exported = manage(env, "export_corpus", "all", "--formats", "full", "--out", str(out))
        assert exported.returncode == 0, exported.stdout + exported.stderr
        (archive,) = out.glob("*.zip")
        with zipfile.ZipFile(archive) as z:
            name = next(n for n in z.namelist() if n.endswith("omega_dialogues.jsonl"))
            rows = [json.loads(line) for line in z.read(name).decode().splitlines() if line.strip()]
        assert rows and not {int(r["key"].rsplit("/", 1)[1]) for r in rows} & failed
