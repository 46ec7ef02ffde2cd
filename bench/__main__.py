"""python -m bench [--smoke] [--tasks N] [--scenario C:LATENCY ...]"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.throughput import Scenario, run_scenario

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {(256, 2.0): 0.9, (256, 0.2): 0.5}


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    widths = [max(len(title), *(len(str(row.get(key, ""))) for row in rows)) for key, title in columns]
    line = " | ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True))
    rule = "-+-".join("-" * w for w in widths)
    body = [
        " | ".join(str(row.get(key, "")).ljust(w) for (key, _), w in zip(columns, widths, strict=True)) for row in rows
    ]
    return "\n".join([line, rule, *body])


THROUGHPUT_COLUMNS = [
    ("scenario", "scenario"),
    ("attempts", "attempts"),
    ("elapsed_s", "seconds"),
    ("attempts_per_min", "attempts/min"),
    ("ideal_attempts_per_min", "ideal/min"),
    ("ratio", "ratio"),
    ("ratio_middle_60pct", "ratio (middle 60%)"),
    ("target", "target"),
    ("server_utilisation", "server util."),
    ("requests_per_attempt", "requests/attempt"),
    ("sequences_per_attempt", "sequences/attempt"),
    ("prompt_tokens_per_attempt", "prompt tok/attempt"),
    ("client_cpu_ms_per_request", "client CPU ms/request"),
    ("mean_queue_wait_s", "mean queue wait s"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description="omega-web benchmarks")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the harness (CI)")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=400, help="dialogues in flight (worker threads in all)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (one per core here)")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="C:LATENCY",
        help="capacity and seconds per call (default: 256:2.0 and 256:0.2)",
    )
    args = parser.parse_args()
    if args.smoke:
        scenarios = [Scenario(capacity=32, latency=0.05, tasks=12, worker_threads=16)]
    else:
        specs = args.scenario or ["256:2.0", "256:0.2"]
        scenarios = [
            Scenario(int(c), float(latency), args.tasks, args.threads, args.workers)
            for c, latency in (spec.split(":") for spec in specs)
        ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="omega-bench-") as work:
        for scenario in scenarios:
            print(f"running: {scenario.label} …", flush=True)
            row = run_scenario(scenario, Path(work))
            target = TARGETS.get((scenario.capacity, scenario.latency))
            row["target"] = f"≥ {target}" if target else "—"
            rows.append(row)
    print()
    print("Throughput of runs on Celery worker processes against a server with vLLM-like capacity")
    print(table(rows, THROUGHPUT_COLUMNS))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"throughput-{'smoke-' if args.smoke else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
