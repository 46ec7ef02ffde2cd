"""`make bench` is not run in CI (it takes minutes); this tiny run checks that its harness still works: a run on
a real worker process against the capacity server, with every number of the table filled in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT
from tests.support.services import postgres_database, redis_database

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_bench_smoke(tmp_path):
    with postgres_database(), redis_database():  # skip (or fail under OMEGA_REQUIRE_SERVICES) without them
        pass
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "client CPU ms/request" in result.stdout and "ideal/min" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    (row,) = json.loads(Path(path).read_text())
    assert row["attempts"] == 12 and row["run_status"] == "finished" and row["failed"] == 0
    assert row["requests_per_attempt"] > 10 and 0 < row["server_utilisation"] <= 1
