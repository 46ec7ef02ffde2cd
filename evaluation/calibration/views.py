"""The Calibration page: how far the judges are from people, for one run or for the runs that share a judge model
and prompt set, and what the people's ratings would have changed."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from dialogues.annotation.models import EPISODE_DIMENSIONS
from dialogues.runs.models import Run
from evaluation.calibration.selectors import RunsCalibration, calibration_groups, runs_calibration
from evaluation.calibration.stats import RESAMPLES
from evaluation.plots import calibration_scatter
from omega_web.roles import Capability, requires

RANGES = {"step5": (0, 1), "relevance": (-1, 1), **{label: (low, high) for label, low, high in EPISODE_DIMENSIONS}}


def _figures(result: RunsCalibration) -> None:
    for number, section in enumerate(result.sections):
        for row in section.rows:
            row.figure_id = f"scatter-{number}-{row.key}"
            if row.result.pairs:
                low, high = RANGES.get(row.key, (0, 10))
                scatter = calibration_scatter(row.result.pairs, label=row.label, low=low, high=high)
                row.scatter = json.dumps(scatter)


def _resamples(request: HttpRequest) -> int:
    """The bootstrap's resamples: ?resamples= from 100 to 10,000, else the default."""
    asked = request.GET.get("resamples", "")
    return min(max(int(asked), 100), 10_000) if asked.isdigit() else RESAMPLES


def _page(request: HttpRequest, result: RunsCalibration, **context: object) -> HttpResponse:
    _figures(result)
    return render(request, "evaluation/calibration.html", {"c": result, **context})


@requires(Capability.VIEW)
def run_calibration(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    return _page(request, runs_calibration([run], resamples=_resamples(request)), run=run)


@requires(Capability.VIEW)
def calibration_index(request: HttpRequest) -> HttpResponse:
    """Across runs: one group per judge model and prompt set; choose one to see its calibration."""
    groups = calibration_groups()
    if "model" in request.GET:
        key = (request.GET.get("model", ""), request.GET.get("prompts", ""))
        group = next((g for g in groups if (g["model"], g["prompts"]) == key), None)
        if group is None:
            raise Http404("no run that people rated has this judge model and prompt set")
        return _page(request, runs_calibration(group["runs"], resamples=_resamples(request)), group=group)
    return render(request, "evaluation/calibration_index.html", {"groups": groups})
