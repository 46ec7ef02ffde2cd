"""Load on the scaled mode: 200 dialogues in flight on a Celery worker against the capacity server, 20 websocket
clients watching dialogue pages through Daphne, half of them dropping their connection midway: every turn written
reaches every client watching it (live, or in the catch-up after reconnecting), the run finishes, and the memory of
the web and worker processes stays flat once warm. The numbers go into `make bench` (bench/load.py)."""

from __future__ import annotations

import pytest

from bench.load import LoadScenario, run_load
from tests.support.services import postgres_database, redis_database

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_every_turn_reaches_every_client_and_memory_stays_flat(tmp_path):
    with postgres_database(), redis_database():  # skip (or fail under OMEGA_REQUIRE_SERVICES) without them
        pass
    row = run_load(LoadScenario(dialogues=200, clients=20, max_turns=8), tmp_path)
    assert row["run_status"] == "finished", row
    assert row["turns"] > 20 * 4 and row["missing"] == 0, row
    for process in ("web_rss", "worker_rss"):
        _start, warm, end = row[process]
        assert warm is not None, row
        # flat once warm: the second two thirds of the run add little (a leak per turn or per client would not)
        assert end - warm < max(60.0, 0.25 * warm), (process, row)
