"""python -m bench [throughput|pages|export|import|sdiv|judges ...] [--smoke] [--tasks N] [--scenario C:LAT] …"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.export import EXPORT_COLUMNS, ExportScenario, run_export
from bench.imports import IMPORT_COLUMNS, ImportScenario, run_imports
from bench.judges import JUDGE_COLUMNS, JudgeScenario, run_judges
from bench.load import LOAD_COLUMNS, LoadScenario, run_load
from bench.pages import PAGE_COLUMNS, PagesScenario, run_pages
from bench.prefix_cache import DEFAULT_BLOCKS
from bench.sdiv import SDIV_COLUMNS, SdivScenario, run_sdiv
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


CACHE_COLUMNS = [
    ("kind", "call kind"),
    ("requests", "requests"),
    ("sequences", "sequences"),
    ("prompt_tokens", "prompt tokens"),
    ("prefill_tokens", "prefill tokens"),
    ("hit_ratio", "hit ratio"),
    ("prefill_tokens_unlimited", "prefill, unlimited"),
    ("hit_ratio_unlimited", "hit ratio, unlimited"),
]
PREFILL_TARGET = 0.3  # tokens needing prefill per DSI attempt at the default capacity, 256 dialogues in flight


def print_cache(row: dict) -> None:
    cache = row["cache"]
    everything = cache["per_attempt"][-1]
    print(
        f"\nPrefix cache per finished attempt, {row['scenario']} ({row['attempts']} attempts): "
        f"blocks of {cache['block_tokens']} tokens, LRU of {cache['capacity_blocks']:,} blocks "
        f"({cache['evicted_blocks']:,} evicted) and unlimited; tokens counted by {cache['tokenizer']}"
    )
    print(table(cache["per_attempt"], CACHE_COLUMNS))
    print(
        f"prefill share {everything['prefill_share']} of prompt tokens (target ≤ {PREFILL_TARGET} at "
        f"{DEFAULT_BLOCKS:,} blocks with 256 dialogues in flight)"
    )


def throughput(args: argparse.Namespace, work: Path) -> None:
    if args.smoke:
        scenarios = [Scenario(capacity=32, latency=0.05, tasks=12, worker_threads=16)]
    else:
        specs = args.scenario or ["256:2.0", "256:0.2"]
        scenarios = [
            Scenario(int(c), float(latency), args.tasks, args.threads, args.workers, args.cache_blocks)
            for c, latency in (spec.split(":") for spec in specs)
        ]
    rows = []
    for scenario in scenarios:
        print(f"running: {scenario.label} …", flush=True)
        row = run_scenario(scenario, work)
        target = TARGETS.get((scenario.capacity, scenario.latency))
        row["target"] = f"≥ {target}" if target else "—"
        rows.append(row)
    print()
    print("Throughput of runs on Celery worker processes against a server with vLLM-like capacity")
    print(table(rows, THROUGHPUT_COLUMNS))
    for row in rows:
        print_cache(row)
    save("throughput", args.smoke, rows)


def cache_bench(args: argparse.Namespace, work: Path) -> None:
    """The prefix cache of a DSI run with 256 dialogues in flight (the issue's setting; --in-flight) at 2 s per call."""
    if args.smoke:
        scenario = Scenario(32, 0.05, 12, 16, cache_blocks=args.cache_blocks, contexts=args.contexts)
    else:
        scenario = Scenario(256, 2.0, args.tasks, args.in_flight, args.workers, args.cache_blocks, args.contexts)
    print(f"running: {scenario.label} …", flush=True)
    row = run_scenario(scenario, work)
    print_cache(row)
    save("cache", args.smoke, [row])


def pages(args: argparse.Namespace, work: Path) -> None:
    if args.smoke:
        scenario = PagesScenario(dialogues=200, tasks=6, clients=4, requests_per_client=3, live_dialogues=1)
    else:
        scenario = PagesScenario(
            dialogues=args.dialogues,
            clients=args.clients,
            web_processes=args.web_processes,
            web_concurrency=args.web_concurrency,
        )
    print(f"running: pages over {scenario.dialogues} dialogues, {scenario.clients} concurrent clients …", flush=True)
    seeded, rows = run_pages(scenario, work)
    print()
    print(
        f"Pages served by {scenario.web_processes} Daphne process(es) "
        f"(OMEGA_WEB_CONCURRENCY={scenario.web_concurrency or 'default'}) "
        f"on PostgreSQL ({seeded['dialogues']} dialogues, "
        f"{seeded['all_turns']} turns; seeded in {seeded['seed_seconds']} s), and live updates through Redis. "
        "Server time: inside Django (Server-Timing); client time adds waiting in line and the network."
    )
    print(table(rows, PAGE_COLUMNS))
    save("pages", args.smoke, [{"setup": seeded}, *rows])


def export(args: argparse.Namespace, work: Path) -> None:
    scenario = ExportScenario(sizes=(60,), tasks=6, targets=(10.0,)) if args.smoke else ExportScenario()
    print(f"running: corpus export of {', '.join(f'{s:,}' for s in scenario.sizes)} dialogues …", flush=True)
    rows = run_export(scenario, work)
    print()
    print("Corpus export (PostgreSQL; each export in a fresh process; peak RSS is that process's maximum)")
    print(table(rows, EXPORT_COLUMNS))
    save("export", args.smoke, rows)


def imports(args: argparse.Namespace, work: Path) -> None:
    scenario = ImportScenario(full_mb=(1, 4), sft_mb=(1, 4)) if args.smoke else ImportScenario()
    print("running: corpus imports of growing files …", flush=True)
    rows = run_imports(scenario, work)
    print()
    print("Corpus import (embedded SQLite; each import in a fresh process; peak RSS is that process's maximum)")
    print(table(rows, IMPORT_COLUMNS))
    save("import", args.smoke, rows)


def sdiv_bench(args: argparse.Namespace, work: Path) -> None:
    scenario = SdivScenario(dialogues=20) if args.smoke else SdivScenario()
    print(f"running: S_div of {scenario.dialogues:,} dialogues, cold and warm, against raw encode …", flush=True)
    rows = run_sdiv(scenario, work)
    print()
    print("S_div throughput (all-MiniLM-L6-v2 on the CPU; embedded SQLite; one process)")
    print(table(rows, SDIV_COLUMNS))
    save("sdiv", args.smoke, rows)


def judges_bench(args: argparse.Namespace, work: Path) -> None:
    if args.smoke:
        scenarios = [JudgeScenario(dialogues=10, capacity=32, latency=0.05)]
    else:
        scenarios = [JudgeScenario(dialogues=300, latency=2.0), JudgeScenario(dialogues=500, latency=0.5)]
    rows = []
    for scenario in scenarios:
        print(f"running: relevance judge + SOTOPIA-EVAL of {scenario.dialogues:,} dialogues against a server of "
              f"{scenario.capacity} sequences at {scenario.latency} s per call …", flush=True)  # fmt: skip
        rows += run_judges(scenario, work / f"judges-{scenario.latency}")
    print()
    print("Judged evaluation throughput (one process; embedded SQLite; the capacity server as the judge)")
    print(table(rows, JUDGE_COLUMNS))
    for row in rows:
        cache = row["cache"]
        print(
            f"\nPrefix cache per evaluated dialogue, {row['dialogues']:,} dialogues at {row['latency_s']} s per call: "
            f"LRU of {cache['capacity_blocks']:,} blocks ({cache['evicted_blocks']:,} evicted) and unlimited; tokens "
            f"counted by {cache['tokenizer']}"
        )
        print(table(cache["per_attempt"], CACHE_COLUMNS))
    save("judges", args.smoke, rows)


def load_bench(args: argparse.Namespace, work: Path) -> None:
    scenario = LoadScenario(dialogues=30, clients=6, max_turns=6) if args.smoke else LoadScenario()
    print(f"running: {scenario.dialogues} dialogues in flight, {scenario.clients} websocket clients (half reconnect) …",
          flush=True)  # fmt: skip
    row = run_load(scenario, work)
    print()
    print("Load: every turn to every watching client; memory of the web and worker processes (PostgreSQL, Redis)")
    print(table([row], LOAD_COLUMNS))
    save("load", args.smoke, [row])


def save(kind: str, smoke: bool, rows: list[dict]) -> None:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{kind}-{'smoke-' if smoke else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nresults: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description="omega-web benchmarks")
    parser.add_argument(
        "which",
        nargs="*",
        choices=["throughput", "cache", "pages", "export", "import", "sdiv", "judges", "load"],
        help="benchmarks to run (default: all)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny runs that check the harness (CI)")
    parser.add_argument("--tasks", type=int, default=1000, help="throughput: tasks in the run")
    parser.add_argument("--threads", type=int, default=400, help="dialogues in flight (worker threads in all)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (one per core here)")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="C:LATENCY",
        help="throughput: capacity and seconds per call (default: 256:2.0 and 256:0.2)",
    )
    parser.add_argument(
        "--cache-blocks",
        type=int,
        default=DEFAULT_BLOCKS,
        help=f"throughput, cache: the modelled prefix cache in blocks of 16 tokens (default {DEFAULT_BLOCKS:,})",
    )
    parser.add_argument("--in-flight", type=int, default=256, help="cache: dialogues in flight (default 256)")
    parser.add_argument(
        "--contexts",
        choices=["synthetic", "sotopia"],
        default="synthetic",
        help="cache: the tasks' text: short synthetic profiles, or SOTOPIA's agents and scenarios (OMEGA_SOTOPIA_DIR)",
    )
    parser.add_argument("--dialogues", type=int, default=10_000, help="pages: dialogues in the library")
    parser.add_argument("--clients", type=int, default=20, help="pages: concurrent clients")
    parser.add_argument(
        "--web-processes", type=int, default=os.cpu_count() or 1, help="pages: Daphne processes (default: one per core)"
    )
    parser.add_argument(
        "--web-concurrency", type=int, help="pages: OMEGA_WEB_CONCURRENCY of each web process (default: its default)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omega-bench-") as work:
        benches = {"throughput": throughput, "pages": pages, "export": export, "import": imports, "sdiv": sdiv_bench,
                   "judges": judges_bench, "load": load_bench, "cache": cache_bench}  # fmt: skip
        for which in args.which or ["sdiv", "judges", "import", "export", "pages", "load", "throughput", "cache"]:
            benches[which](args, Path(work))


if __name__ == "__main__":
    main()
