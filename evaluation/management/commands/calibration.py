"""python manage.py calibration RUN [RUN …] [--resamples N] [--seed S] [--json]: the judges against people on these
runs (together), and what the people's ratings would change — what the Calibration page shows."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dialogues.runs.models import Run
from evaluation.calibration.selectors import RunsCalibration, runs_calibration
from evaluation.calibration.stats import RESAMPLES, SEED, Estimate

STATISTICS = ("spearman", "kendall", "mae", "bias", "alpha_judge", "alpha_people")


def _estimate(e: Estimate) -> dict[str, Any]:
    return {"value": e.value, "low": e.low, "high": e.high, "resamples": e.resamples, "note": e.note}


def as_json(c: RunsCalibration) -> dict[str, Any]:
    changes = c.changes
    return {
        "runs": [run.pk for run in c.runs],
        "resamples": c.resamples,
        "seed": c.seed,
        "judges": [
            {
                "judge": s.judge,
                "version": s.version,
                "quantities": [
                    {
                        "quantity": r.key,
                        "items": r.result.items,
                        "people": r.result.people,
                        "people_items": r.result.people_items,
                        **{name: _estimate(getattr(r.result, name)) for name in STATISTICS},
                    }
                    for r in s.rows
                ],
            }
            for s in c.sections
        ],
        "decision_changes": {
            "rated_turns": c.rated_by_people,
            "strategy": [{"judge": a, "people": b, "turns": n} for a, b, n in changes.strategy_table],
            "termination": changes.termination_cells,
            "filter": [vars(f) for f in changes.filters],
            "incomplete": changes.incomplete,
        },
    }


class Command(BaseCommand):
    help = "How far the LLM judges are from people on these runs, and what the people's ratings would change."

    def add_arguments(self, parser):
        parser.add_argument("runs", nargs="+", type=int, help="run ids (calibrated together)")
        parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples (default 1000)")
        parser.add_argument("--seed", type=int, default=SEED, help="the bootstrap's seed (default 0)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def handle(self, *args, runs: list[int], resamples: int, seed: int, json: bool, **options):
        found = list(Run.objects.filter(pk__in=runs).order_by("pk"))
        missing = sorted(set(runs) - {run.pk for run in found})
        if missing:
            raise CommandError(f"no run {', '.join(map(str, missing))}")
        if not 1 <= resamples <= 100_000:
            raise CommandError("--resamples is 1 to 100,000")
        c = runs_calibration(found, resamples=resamples, seed=seed)
        if json:
            self.stdout.write(_dumps(as_json(c)))
            return
        self.stdout.write(f"Runs {', '.join(f'#{r.pk}' for r in found)}: 95% bootstrap intervals, {resamples} "
                          f"resamples, seed {seed}")  # fmt: skip
        for s in c.sections:
            self.stdout.write(f"\n{s.judge} judge ({s.version})")
            self.stdout.write(
                f"  {'quantity':<9}{'items':>6}{'people':>7}  " + "  ".join(f"{n:<24}" for n in STATISTICS)
            )
            for r in s.rows:
                cells = "  ".join(f"{_cell(getattr(r.result, n)):<24}" for n in STATISTICS)
                self.stdout.write(f"  {r.label:<9}{r.result.items:>6}{r.result.people:>7}  {cells}")
        changes = c.changes
        self.stdout.write(f"\nIf the people's ratings replaced the judge's ({c.rated_by_people} rated turns):")
        for a, b, n in changes.strategy_table:
            self.stdout.write(f"  strategy {a} -> {b}: {n} of {changes.strategy_turns} turns")
        cells = changes.termination_cells
        self.stdout.write(f"  termination (judge/people): go/go {cells['go_go']}, go/end {cells['go_end']}, "
                          f"end/go {cells['end_go']}, end/end {cells['end_end']}")  # fmt: skip
        self.stdout.write(f"  filter: {changes.would_fail} would fail, {changes.would_pass} would pass, of "
                          f"{len(changes.filters)} dialogues whose final rated turn people rated")  # fmt: skip


def _cell(e: Estimate) -> str:
    if e.value is None:
        return "undefined"
    return f"{e.value:.3f} [{e.low:.2f}, {e.high:.2f}]" if e.low is not None else f"{e.value:.3f}"


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
