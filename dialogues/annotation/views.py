"""Annotation and curation in the browser: each turn's annotation beside it on the dialogue page (saved as you
go, keyboard-driven), the dialogue's decision and its submission, a curator's adjudication, the queue ("next
dialogue for me"), a run's agreement with its disagreements, and the label set."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dialogues.annotation.models import Decision, Label
from dialogues.annotation.selectors import (
    TurnPanel,
    dialogue_panel,
    next_for,
    nothing_left_reason,
    progress,
    run_agreement,
)
from dialogues.annotation.services import (
    Conflict,
    TurnAnnotationInput,
    adjudicate,
    dialogue_annotation_save,
    label_save,
    turn_annotation_save,
)
from dialogues.common.http import redirect_back
from dialogues.runs.models import Dialogue, Run, RunKind, Turn
from dialogues.runs.selectors import dialogue_get_or_404
from omega_web.roles import Capability, requires


class TurnAnnotationForm(forms.Form):
    version = forms.IntegerField(min_value=0)
    labels = forms.ModelMultipleChoiceField(queryset=Label.objects.filter(active=True), required=False)
    quality = forms.TypedChoiceField(
        choices=[("", "—"), *((str(i), str(i)) for i in range(1, 6))], coerce=int, empty_value=None, required=False
    )
    note = forms.CharField(required=False, max_length=4000)
    corrected_text = forms.CharField(required=False, max_length=8000)
    correction_reason = forms.CharField(required=False, max_length=300)

    def data_input(self) -> TurnAnnotationInput:
        d = self.cleaned_data
        return TurnAnnotationInput(
            labels=[label.pk for label in d["labels"]],
            quality=d["quality"],
            note=d["note"],
            corrected_text=d["corrected_text"],
            correction_reason=d["correction_reason"],
        )


class DecisionForm(forms.Form):
    version = forms.IntegerField(min_value=0)
    decision = forms.ChoiceField(choices=[("", "undecided"), *Decision.choices], required=False)
    note = forms.CharField(required=False, max_length=4000)


QUALITY_CHOICES = ["1", "2", "3", "4", "5", ""]
DECISION_CHOICES = [("accept", "accept", "a"), ("reject", "reject", "x"), ("needs_review", "needs review", "v")]


def _values(t: TurnPanel, posted: Any = None) -> dict[str, Any]:
    """What the turn's form shows: the person's input when a save was refused (nothing typed is lost), else what
    they saved."""
    if posted is not None:
        corrected = posted.get("corrected_text", "")
        return {
            "labels": {int(v) for v in posted.getlist("labels") if v.isdigit()},
            "quality": posted.get("quality", ""),
            "note": posted.get("note", ""),
            "corrected": corrected if corrected.strip() != t.turn.argument.strip() else "",
            "reason": posted.get("correction_reason", ""),
        }
    mine = t.mine
    return {
        "labels": t.mine_labels,
        "quality": str(mine.quality) if mine and mine.quality else "",
        "note": mine.note if mine else "",
        "corrected": mine.corrected_text if mine else "",
        "reason": mine.correction_reason if mine else "",
    }


def _without_htmx(request: HttpRequest, dialogue_id: int, extra: dict[str, Any]) -> HttpResponse:
    """A form posted without JavaScript: say what happened and go back to the dialogue."""
    problem = extra.get("conflict") or extra.get("error")
    if problem:
        messages.error(request, f"Not saved: {problem}.")
    else:
        messages.success(request, "Saved.")
    return redirect(reverse("dialogue_detail", args=[dialogue_id]))


def _slot(request: HttpRequest, turn: Turn, posted: Any = None, **extra: Any) -> HttpResponse:
    if request.method == "POST" and not request.htmx:
        return _without_htmx(request, turn.dialogue_id, extra)
    panel = dialogue_panel(turn.dialogue, request.user, only_turn=turn.pk)
    t = panel.turns[0]
    context = {"panel": panel, "t": t, "values": _values(t, posted), "quality_choices": QUALITY_CHOICES, **extra}
    status = 409 if extra.get("conflict") else (400 if extra.get("error") else 200)
    return render(request, "annotation/_turn_slot.html", context, status=status)


def _decision_values(panel: Any, posted: Any = None) -> dict[str, Any]:
    if posted is not None:
        return {"decision": posted.get("decision", ""), "note": posted.get("note", "")}
    return {"decision": panel.mine.decision if panel.mine else "", "note": panel.mine.note if panel.mine else ""}


@requires(Capability.ANNOTATE)
def dialogue_annotations(request: HttpRequest, pk: int) -> HttpResponse:
    """Every turn's annotation slot and the decision panel, as out-of-band fragments for the dialogue page: for
    the turns the page was drawn with (`through`); turns that arrived live since fetch their own slot."""
    through = request.GET.get("through", "")
    panel = dialogue_panel(
        dialogue_get_or_404(pk), request.user, through=int(through) if through.lstrip("-").isdigit() else None
    )
    for t in panel.turns:
        t.values = _values(t)
    context = {
        "panel": panel,
        "quality_choices": QUALITY_CHOICES,
        "decision_choices": DECISION_CHOICES,
        **_decision_values(panel),
    }
    return render(request, "annotation/_slots.html", context)


@requires(Capability.ANNOTATE)
def turn_annotation(request: HttpRequest, pk: int) -> HttpResponse:
    turn = get_object_or_404(Turn.objects.select_related("dialogue__run"), pk=pk)
    if request.method != "POST":
        return _slot(request, turn)
    form = TurnAnnotationForm(request.POST)
    if not form.is_valid():
        return _slot(request, turn, error=_errors(form), posted=request.POST)
    try:
        turn_annotation_save(
            turn_id=turn.pk, annotator=request.user, data=form.data_input(), version=form.cleaned_data["version"]
        )
    except Conflict as conflict:
        return _slot(request, turn, conflict=conflict.message, posted=request.POST)
    except ValueError as bad:
        return _slot(request, turn, error=str(bad), posted=request.POST)
    return _slot(request, turn, saved=True)


def _errors(form: forms.Form) -> str:
    return " ".join(f"{form.fields[name].label or name}: {' '.join(errs)}" if name != "__all__" else " ".join(errs)
                    for name, errs in form.errors.items())  # fmt: skip


def _decision_panel(request: HttpRequest, dialogue: Dialogue, **extra: Any) -> HttpResponse:
    if not request.htmx:
        return _without_htmx(request, dialogue.pk, extra)
    panel = dialogue_panel(dialogue, request.user, only_turn=-1)
    posted = extra.pop("posted", None)
    context = {"panel": panel, "decision_choices": DECISION_CHOICES, **_decision_values(panel, posted), **extra}
    conflict = extra.get("conflict") or extra.get("adjudication_conflict")
    status = 409 if conflict else (400 if extra.get("error") or extra.get("adjudication_error") else 200)
    response = render(request, "annotation/_decision.html", context, status=status)
    if extra.get("submitted"):
        response["HX-Trigger"] = "annotations-changed"  # blind mode lifted: the turn slots show the others now
    return response


@requires(Capability.ANNOTATE)
@require_POST
def dialogue_decision(request: HttpRequest, pk: int) -> HttpResponse:
    dialogue = dialogue_get_or_404(pk)
    form = DecisionForm(request.POST)
    submit = "submit" in request.POST
    if not form.is_valid():
        return _decision_panel(request, dialogue, error=_errors(form), posted=request.POST)
    d = form.cleaned_data
    try:
        dialogue_annotation_save(
            dialogue_id=pk, annotator=request.user, decision=d["decision"], note=d["note"], submit=submit,
            version=d["version"],
        )  # fmt: skip
    except Conflict as conflict:
        return _decision_panel(request, dialogue, conflict=conflict.message, posted=request.POST)
    except ValueError as bad:
        return _decision_panel(request, dialogue, error=str(bad), posted=request.POST)
    return _decision_panel(request, dialogue, saved=True, submitted=submit)


@requires(Capability.CURATE)
@require_POST
def dialogue_adjudicate(request: HttpRequest, pk: int) -> HttpResponse:
    dialogue = dialogue_get_or_404(pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _decision_panel(request, dialogue, adjudication_error=_errors(form))
    d = form.cleaned_data
    try:
        adjudicate(dialogue_id=pk, curator=request.user, decision=d["decision"], note=d["note"], version=d["version"])
    except (Conflict, ValueError) as problem:
        text = problem.message if isinstance(problem, Conflict) else str(problem)
        if not request.htmx:
            messages.error(request, f"Dialogue #{pk}: not decided: {text}.")
            return redirect_back(request, "dialogue_detail", pk=pk)
        key = "adjudication_conflict" if isinstance(problem, Conflict) else "adjudication_error"
        return _decision_panel(request, dialogue, **{key: text})
    if not request.htmx:
        messages.success(request, f"Dialogue #{pk}: {d['decision']} (curator's decision).")
        return redirect_back(request, "dialogue_detail", pk=pk)
    return _decision_panel(request, dialogue, adjudicated=True)


# --- the queue --------------------------------------------------------------------------------------------


@requires(Capability.ANNOTATE)
def annotation_queue(request: HttpRequest) -> HttpResponse:
    runs = list(
        Run.objects.filter(kind=RunKind.GENERATION)
        .annotate(finished=Count("dialogues", filter=Q(dialogues__kept=True, dialogues__status="finished")))
        .filter(finished__gt=0)
        .order_by("-id")[:50]
    )
    rows = [{"run": run, "progress": progress(run)} for run in runs]
    return render(request, "annotation/queue.html", {"rows": rows})


@requires(Capability.ANNOTATE)
def annotation_next(request: HttpRequest) -> HttpResponse:
    run_id = request.GET.get("run")
    dialogue = next_for(request.user, run_id=int(run_id) if run_id and run_id.isdigit() else None)
    if dialogue is None:
        run = int(run_id) if run_id and run_id.isdigit() else None
        messages.info(
            request, f"Nothing left for you to annotate here: {nothing_left_reason(request.user, run_id=run)}"
        )
        return redirect("annotation_queue")
    url = reverse("dialogue_detail", args=[dialogue.pk]) + "?annotate=1"
    return redirect(url + (f"&run={run_id}" if run_id and run_id.isdigit() else ""))


# --- agreement and adjudication ---------------------------------------------------------------------------


@requires(Capability.CURATE)
def run_agreement_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    context = {"run": run, "a": run_agreement(run), "progress": progress(run)}
    return render(request, "annotation/agreement.html", context)


# --- the label set ----------------------------------------------------------------------------------------


class LabelForm(forms.Form):
    label_id = forms.IntegerField(required=False)
    version = forms.IntegerField(min_value=0)
    name = forms.CharField(max_length=60)
    description = forms.CharField(max_length=300, required=False)
    position = forms.IntegerField(min_value=0, max_value=999)
    active = forms.BooleanField(required=False)


@requires(Capability.VIEW)
def label_list(request: HttpRequest) -> HttpResponse:
    labels = Label.objects.annotate(uses=Count("turn_annotations"))
    return render(request, "annotation/labels.html", {"labels": labels, "next_position": labels.count() + 1})


@requires(Capability.CURATE)
@require_POST
def label_edit(request: HttpRequest) -> HttpResponse:
    form = LabelForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"The label was not saved. {_errors(form)}")
        return redirect("label_list")
    d = form.cleaned_data
    try:
        label = label_save(
            label_id=d["label_id"], name=d["name"], description=d["description"], position=d["position"],
            active=d["active"], version=d["version"],
        )  # fmt: skip
    except Conflict as conflict:
        current = conflict.current
        now = f" It is now “{current.name}” ({'active' if current.active else 'retired'})." if current else ""
        messages.error(request, f"Not saved: {conflict.message}.{now} Check it and save again.")
        return redirect("label_list")
    except ValueError as bad:
        messages.error(request, f"The label was not saved: {bad}.")
        return redirect("label_list")
    messages.success(request, f"Saved the label “{label.name}”.")
    return redirect("label_list")
