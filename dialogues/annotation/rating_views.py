"""People rating what the judges rated, in the browser: a rated turn's step-rating questions and its action's
relevance (a page of its own, where blind mode hides the judge's numbers, and a partial for the dialogue page), a
dialogue's SOTOPIA-EVAL scores per agent, and a run's calibration queue."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from dialogues.annotation.judge_ratings import (
    calibration_next,
    calibration_queue_build,
    episode_panel,
    episode_rating_save,
    queue_progress,
    rating_panel,
    relevance_save,
    step_rating_save,
)
from dialogues.annotation.models import EPISODE_DIMENSIONS, CalibrationQueue
from dialogues.annotation.services import Conflict
from dialogues.runs.models import Run, Turn
from dialogues.runs.selectors import dialogue_get_or_404
from omega_web.roles import Capability, has_capability, requires

STEP_QUESTIONS = (
    ("step1", "Agent 1's goal so far", "How well has agent 1 achieved their goal so far? 0–10", 10),
    ("step2", "Agent 2's goal so far", "How well has agent 2 achieved their goal so far? 0–10", 10),
    ("step3", "Agent 1 in a few turns", "Where will agent 1's goal score be after a few more turns? 0–10", 10),
    ("step4", "Agent 2 in a few turns", "Where will agent 2's goal score be after a few more turns? 0–10", 10),
    (
        "step5",
        "Should it go on?",
        "0: end now (no longer serves or improves the goals, repeats, goodbyes); 1: go on",
        1,
    ),
)
RELEVANCE_CHOICES = [("-1", "−1"), ("-0.5", "−0.5"), ("0", "0"), ("0.5", "0.5"), ("1", "1")]


def _optional_int(high: int) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        choices=[("", "—"), *((str(i), str(i)) for i in range(high + 1))], coerce=int, empty_value=None, required=False
    )


class StepRatingForm(forms.Form):
    version = forms.IntegerField(min_value=0)
    relevance_version = forms.IntegerField(min_value=0, required=False)
    step1 = _optional_int(10)
    step2 = _optional_int(10)
    step3 = _optional_int(10)
    step4 = _optional_int(10)
    step5 = _optional_int(1)
    relevance = forms.TypedChoiceField(
        choices=[("", "—"), *RELEVANCE_CHOICES], coerce=float, empty_value=None, required=False
    )


def _errors(form: forms.Form) -> str:
    return " ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def _rating_context(request: HttpRequest, turn: Turn, **extra: Any) -> dict[str, Any]:
    panel = rating_panel(turn, request.user)
    mine = panel.mine
    posted = extra.pop("posted", None)
    if posted is not None:
        values = {step: posted.get(step, "") for step, *_ in STEP_QUESTIONS}
        values["relevance"] = posted.get("relevance", "")
    else:
        values = {step: "" if mine is None or getattr(mine, step) is None else str(getattr(mine, step))
                  for step, *_ in STEP_QUESTIONS}  # fmt: skip
        values["relevance"] = "" if panel.relevance is None else f"{panel.relevance.score:g}"
    questions = [
        {"key": key, "title": title, "help": help_text, "choices": [str(i) for i in range(high + 1)],
         "value": values[key]}
        for key, title, help_text, high in STEP_QUESTIONS
    ]  # fmt: skip
    return {"rp": panel, "questions": questions, "relevance_value": values["relevance"],
            "relevance_choices": RELEVANCE_CHOICES, **extra}  # fmt: skip


@requires(Capability.ANNOTATE)
def turn_judge_rating(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the rating page of one turn (the dialogue up to it, the questions); POST: save the answers."""
    turn = get_object_or_404(Turn.objects.select_related("dialogue__run", "dialogue__task__scenario"), pk=pk)
    if request.method == "POST":
        return _save(request, turn)
    queue_run = request.GET.get("queue", "")
    context = _rating_context(request, turn)
    history = Turn.objects.filter(dialogue=turn.dialogue, index__lte=turn.index).order_by("index")
    task = turn.dialogue.task
    context.update(
        {
            "turn": turn,
            "dialogue": turn.dialogue,
            "history": history,
            "names": (task.agent1.full_name, task.agent2.full_name),
            "scenario": task.scenario,
            "queue_run": int(queue_run) if queue_run.isdigit() else None,
        }
    )
    return render(request, "annotation/rating.html", context)


def _save(request: HttpRequest, turn: Turn) -> HttpResponse:
    form = StepRatingForm(request.POST)
    status, extra = 200, {}
    if not form.is_valid():
        status, extra = 400, {"error": _errors(form), "posted": request.POST}
    else:
        d = form.cleaned_data
        scores = {step: d[step] for step, *_ in STEP_QUESTIONS}
        try:
            if any(v is not None for v in scores.values()) or d["version"]:
                step_rating_save(turn_id=turn.pk, annotator=request.user, scores=scores, version=d["version"])
            if d["relevance"] is not None:
                relevance_save(turn_id=turn.pk, annotator=request.user, score=d["relevance"],
                               version=d["relevance_version"] or 0)  # fmt: skip
            extra = {"saved": True}
        except Conflict as conflict:
            status, extra = 409, {"conflict": conflict.message, "posted": request.POST}
        except ValueError as bad:
            status, extra = 400, {"error": str(bad), "posted": request.POST}
    if not request.htmx:
        problem = extra.get("conflict") or extra.get("error")
        (messages.error if problem else messages.success)(request, f"Not saved: {problem}." if problem else "Saved.")
        url = reverse("turn_judge_rating", args=[turn.pk])
        queue = request.POST.get("queue", "")
        if not problem and queue.isdigit():
            return redirect(reverse("run_calibration_next", args=[int(queue)]))
        return redirect(url + (f"?queue={queue}" if queue.isdigit() else ""))
    context = _rating_context(request, turn, **extra)
    context["queue_run"] = int(request.POST["queue"]) if request.POST.get("queue", "").isdigit() else None
    return render(request, "annotation/_judge_rating.html", context, status=status)


class EpisodeForm(forms.Form):
    version = forms.IntegerField(min_value=0)
    speaker = forms.TypedChoiceField(choices=[("0", "1"), ("1", "2")], coerce=int)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for label, low, high in EPISODE_DIMENSIONS:
            self.fields[label] = forms.FloatField(min_value=low, max_value=high, required=False)


@requires(Capability.ANNOTATE)
def dialogue_episode_rating(request: HttpRequest, pk: int) -> HttpResponse:
    """A dialogue's SOTOPIA-EVAL scores, per agent, by this person (each dimension optional)."""
    dialogue = dialogue_get_or_404(pk)
    if request.method == "POST":
        form = EpisodeForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"Not saved: {_errors(form)}")
        else:
            d = form.cleaned_data
            try:
                episode_rating_save(
                    dialogue_id=pk, speaker=d["speaker"], annotator=request.user,
                    scores={label: d[label] for label, *_ in EPISODE_DIMENSIONS}, version=d["version"],
                )  # fmt: skip
                messages.success(request, f"Saved your SOTOPIA-EVAL scores of agent {d['speaker'] + 1}.")
            except Conflict as conflict:
                messages.error(request, f"Not saved: {conflict.message}.")
            except ValueError as bad:
                messages.error(request, f"Not saved: {bad}.")
        return redirect("dialogue_episode_rating", pk=pk)
    mine = episode_panel(dialogue, request.user)
    task = dialogue.task
    agents = []
    for speaker, name in enumerate((task.agent1.full_name, task.agent2.full_name)):
        row = mine[speaker]
        dims = [{"label": label, "low": low, "high": high, "value": (row.scores.get(label, "") if row else "")}
                for label, low, high in EPISODE_DIMENSIONS]  # fmt: skip
        agents.append({"speaker": speaker, "name": name, "row": row, "dims": dims})
    turns = dialogue.turns.order_by("index")
    return render(request, "annotation/episode_rating.html", {"dialogue": dialogue, "agents": agents, "turns": turns})


class QueueForm(forms.Form):
    target = forms.IntegerField(min_value=1, max_value=100000)
    people = forms.IntegerField(min_value=1, max_value=20)
    seed = forms.IntegerField(min_value=0, max_value=2**31)


@requires(Capability.ANNOTATE)
def calibration_queue_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A run's calibration queue: its draw (researchers and curators), its progress, and the next item."""
    run = get_object_or_404(Run, pk=pk)
    queue = CalibrationQueue.objects.filter(run=run).first()
    can_build = has_capability(request.user, Capability.RUN) or has_capability(request.user, Capability.CURATE)
    if request.method == "POST":
        if not can_build:
            return HttpResponse("Drawing a calibration queue needs the researcher or curator role.", status=403)
        form = QueueForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                queue = calibration_queue_build(run=run, target=d["target"], people=d["people"], seed=d["seed"],
                                                user=request.user)  # fmt: skip
                messages.success(request, f"Drew {len(queue.items)} rated turns for calibration.")
            except ValueError as bad:
                messages.error(request, f"Not drawn: {bad}.")
        else:
            messages.error(request, f"Not drawn: {_errors(form)}")
        return redirect("run_calibration_queue", pk=pk)
    progress = queue_progress(queue) if queue else None
    items = []
    if queue:
        turns = Turn.objects.in_bulk([i["turn"] for i in queue.items])
        items = [{**i, "t": turns.get(i["turn"])} for i in queue.items]
    context = {"run": run, "queue": queue, "progress": progress, "items": items, "can_build": can_build,
               "defaults": {"target": queue.target if queue else 40, "people": queue.people if queue else 2,
                            "seed": queue.seed if queue else 0}}  # fmt: skip
    return render(request, "annotation/calibration_queue.html", context)


@requires(Capability.ANNOTATE)
def calibration_next_view(request: HttpRequest, pk: int) -> HttpResponse:
    queue = CalibrationQueue.objects.filter(run_id=get_object_or_404(Run, pk=pk).pk).first()
    if queue is None:
        messages.info(request, "No calibration queue has been drawn for this run yet.")
        return redirect("run_calibration_queue", pk=pk)
    turn = calibration_next(queue, request.user)
    if turn is None:
        messages.info(
            request, "Nothing left for you in this calibration queue: you rated every item that needs people."
        )
        return redirect("run_calibration_queue", pk=pk)
    return redirect(reverse("turn_judge_rating", args=[turn.pk]) + f"?queue={pk}")
