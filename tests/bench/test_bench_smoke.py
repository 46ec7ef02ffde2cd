"""`make bench` is not run in CI (it takes minutes); these tiny runs check that its harnesses still work: a run on
a real worker process against the capacity server, and pages and live updates served by Daphne on PostgreSQL and
Redis, with every number of the tables filled in."""

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
        [sys.executable, "-m", "bench", "throughput", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "client CPU ms/request" in result.stdout and "ideal/min" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    (row,) = json.loads(Path(path).read_text())
    assert row["attempts"] == 12 and row["run_status"] == "finished" and row["failed"] == 0
    assert row["requests_per_attempt"] > 10 and 0 < row["server_utilisation"] <= 1
    # the prefix cache's table: by call kind, all kinds last; the unlimited cache never prefills more
    assert "Prefix cache per finished attempt" in result.stdout and "hit ratio, unlimited" in result.stdout
    kinds = {r["kind"]: r for r in row["cache"]["per_attempt"]}
    assert {"action", "rating", "style transfer", "nsi.update", "all"} <= set(kinds)
    everything = row["cache"]["per_attempt"][-1]
    assert everything["kind"] == "all" and everything["prompt_tokens"] > 0
    assert 0 < everything["prefill_tokens_unlimited"] <= everything["prefill_tokens"] < everything["prompt_tokens"]


def test_bench_cache_smoke_with_sotopia_contexts():
    with postgres_database(), redis_database():
        pass
    result = subprocess.run(
        [sys.executable, "-m", "bench", "cache", "--smoke", "--contexts", "sotopia", "--cache-blocks", "500"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sotopia contexts" in result.stdout and "LRU of 500 blocks" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    (row,) = json.loads(Path(path).read_text())
    assert row["attempts"] == 12 and row["failed"] == 0 and row["cache"]["capacity_blocks"] == 500
    everything = row["cache"]["per_attempt"][-1]
    # 500 blocks are fewer than 16 dialogues' prefixes: blocks were evicted and more was prefilled than unlimited
    assert row["cache"]["evicted_blocks"] > 0
    assert everything["prefill_tokens_unlimited"] < everything["prefill_tokens"] < everything["prompt_tokens"]


def test_bench_pages_smoke():
    with postgres_database(), redis_database():
        pass
    result = subprocess.run(
        [sys.executable, "-m", "bench", "pages", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server p95 ms" in result.stdout and "turn written → fragment at the client" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    setup, *rows = json.loads(Path(path).read_text())
    assert setup["setup"]["dialogues"] >= 200 and setup["setup"]["turns"] >= 10
    pages, (live,) = rows[:-1], rows[-1:]
    for row in pages:
        assert row["requests"] == 12 and 0 < row["server_p50_ms"] <= row["server_p95_ms"], row
        assert row["server_p50_ms"] <= row["client_p50_ms"], row  # the client waits at least as long
    assert live["missing"] == 0 and live["requests"] > 10 and live["client_p50_ms"] > 0


def test_bench_export_smoke():
    with postgres_database():
        pass
    result = subprocess.run(
        [sys.executable, "-m", "bench", "export", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "peak RSS MB" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    sft, everything = json.loads(Path(path).read_text())
    assert sft["dialogues"] == everything["dialogues"] == 60 and sft["records"] > 60
    assert sft["seconds"] > 0 and sft["peak_rss_mb"] >= sft["rss_before_mb"] > 0


def test_bench_import_smoke():
    """Runs on the embedded defaults (SQLite): no services needed."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "import", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "peak RSS MB" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    rows = json.loads(Path(path).read_text())
    assert [r["format"] for r in rows] == ["full", "full", "sotopia-sft", "sotopia-sft"]
    for row in rows:
        assert row["dialogues"] > 0 and row["turns"] == 20 * row["dialogues"] and row["seconds"] > 0, row
        assert row["peak_rss_mb"] >= row["rss_before_mb"] > 0, row


def test_bench_sdiv_smoke():
    """Embedded SQLite and the local embedding model: no services needed."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "sdiv", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    (row,) = json.loads(Path(path).read_text())
    assert row["dialogues"] == 20 and row["actions"] == 400 and row["raw_per_s"] > 0 and row["cold_per_s"] > 0
    assert row["warm_s"] >= 0


def test_bench_judges_smoke():
    """Embedded SQLite and the capacity server as the judge: no services needed."""
    result = subprocess.run(
        [sys.executable, "-m", "bench", "judges", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ideal / actual" in result.stdout
    path = result.stdout.strip().splitlines()[-1].split("results: ")[1]
    (row,) = json.loads(Path(path).read_text())
    assert row["dialogues"] == 10 and row["requests"] == 10 * 20 + 10 * 3 and 0 < row["ratio"] <= 1.05
