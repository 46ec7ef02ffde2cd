"""Evaluation on the dialogue page: the S-IF panel (S_div per agent with its similarity heatmap), loaded after the
page, and the action that computes it on a worker."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from dialogues.models import DialogueStatus, Run
from dialogues.tasks import evaluation_sdiv_task
from dialogues.views.dialogues import dialogue_or_404
from evaluation import sdiv
from evaluation.services import dialogue_diversity, run_diversity
from omega_web.roles import Capability, capability_map, requires


def _panel(request: HttpRequest, dialogue, *, computing: bool = False) -> HttpResponse:
    agents = dialogue_diversity(dialogue.pk)
    waiting = computing or (request.GET.get("computing") == "1" and not all(a.score for a in agents))
    context = {
        "dialogue": dialogue,
        "agents": agents,
        "computing": waiting,
        "alpha": sdiv.ALPHA,
        "can": capability_map(request.user),
    }
    return render(request, "evaluation/_sif_panel.html", context)


@requires(Capability.VIEW)
def dialogue_sif(request: HttpRequest, pk: int) -> HttpResponse:
    return _panel(request, dialogue_or_404(pk))


@requires(Capability.RUN)
@require_POST
def dialogue_sif_compute(request: HttpRequest, pk: int) -> HttpResponse:
    dialogue = dialogue_or_404(pk)
    evaluation_sdiv_task.delay([dialogue.pk])
    return _panel(request, dialogue, computing=True)


def _run_panel(request: HttpRequest, run: Run, *, computing: bool = False) -> HttpResponse:
    from evaluation.plots import sorted_scores_chart  # plotly only where a figure is drawn

    report = run_diversity(run.pk)
    waiting = computing or (request.GET.get("computing") == "1" and report.evaluated < report.finished)
    figure = json.dumps(sorted_scores_chart(report.points, metric="S_div")) if report.points else ""
    context = {"run": run, "report": report, "figure": figure, "computing": waiting, "alpha": sdiv.ALPHA,
               "can": capability_map(request.user)}  # fmt: skip
    return render(request, "evaluation/_run_sif_panel.html", context)


@requires(Capability.VIEW)
def run_sif(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_panel(request, get_object_or_404(Run, pk=pk))


@requires(Capability.RUN)
@require_POST
def run_sif_compute(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    ids = list(run.dialogues.filter(status=DialogueStatus.FINISHED).order_by("id").values_list("pk", flat=True))
    if ids:
        evaluation_sdiv_task.delay(ids)
    return _run_panel(request, run, computing=bool(ids))
