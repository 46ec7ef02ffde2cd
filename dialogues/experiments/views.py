"""Experiments in the browser: fork a dialogue from a turn (one fork or a counterfactual batch), play one side
yourself, and compare two dialogues side by side."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dialogues.common.figure_csv import figure_csv_response
from dialogues.experiments.forms import CompareForm, ForkForm, ForkSettingsForm, HumanActionForm
from dialogues.experiments.selectors import compare
from dialogues.experiments.services import Arm, ForkSettings, batch_seeds, dialogue_fork_start
from dialogues.inspection.selectors import dialogue_state_context, waiting_for_person
from dialogues.llm.backends import Backend, served_problem
from dialogues.runs import events
from dialogues.runs.models import Dialogue, Run
from dialogues.runs.selectors import dialogue_config, dialogue_get_or_404
from dialogues.runs.starting import dialogue_play_start
from omega_web.roles import Capability, capability_map, requires


@requires(Capability.RUN)
def dialogue_fork_view(request: HttpRequest, pk: int) -> HttpResponse:
    parent = dialogue_get_or_404(pk)
    names = (parent.task.agent1.full_name, parent.task.agent2.full_name)
    base = dialogue_config(parent)
    last_turn = parent.turns_count - 1  # -1: no turns yet, a fork can only start over
    asked = request.GET.get("turn", "")
    turn = str(min(int(asked), last_turn)) if asked.lstrip("-").isdigit() else str(last_turn)
    data = request.POST if request.method == "POST" else None
    form = ForkForm(data, names=names, last_turn=last_turn, initial={"turn": turn})
    arm_forms = [ForkSettingsForm(data, base=base, simulated=parent.run.simulated, prefix=p) for p in ("a", "b")]
    if request.method == "POST" and form.is_valid() and all(f.is_valid() for f in arm_forms):
        run = _create(request, parent, form, arm_forms)
        if run is not None:
            if run.dialogues.count() == 1:
                return redirect("dialogue_detail", pk=run.dialogues.get().pk)
            return redirect("run_detail", pk=run.pk)
    context = {
        "parent": parent,
        "form": form,
        "arm_forms": arm_forms,
        "names": names,
        "base": base,
        "shared_preview": list(parent.turns.filter(index__lte=int(turn)).order_by("-index")[:1])
        if str(turn).lstrip("-").isdigit()
        else [],
    }
    return render(request, "experiments/fork.html", context, status=400 if request.method == "POST" else 200)


def _create(request: HttpRequest, parent: Dialogue, form: ForkForm, arm_forms: list[ForkSettingsForm]) -> Run | None:
    d = form.cleaned_data
    batch = d["mode"] == "batch"
    human_side = int(d["human_side"]) if d.get("human_side") not in (None, "") else None
    arms = []
    for label, arm_form in zip(("A", "B"), arm_forms if batch else arm_forms[:1], strict=False):
        config, model = arm_form.changes()
        settings = ForkSettings(
            seed=None if batch else d["seed"], model=model, config=config, human_side=None if batch else human_side
        )
        arms.append(Arm(label if batch else "", settings))
    if batch and arms[0].settings == arms[1].settings:
        form.add_error(None, "Settings A and B are the same: change something in B (or in A) to compare.")
        return None
    for arm in arms:
        if arm.settings.model:
            backend = Backend.of(parent.run)
            problem = served_problem(Backend(backend.kind, arm.settings.model, backend.base_urls))
            if problem:
                form.add_error(None, f"The model {arm.settings.model!r} cannot be used: {problem}")
                return None
    turn = d["turn"] if d["turn"] >= 0 else None
    seeds = batch_seeds(parent, turn, d["batch_seed"] or 0, d["count"]) if batch else [None]
    try:
        run = dialogue_fork_start(
            parent_id=parent.pk,
            turn=turn,
            arms=arms,
            seeds=seeds,
            created_by=request.user,
            start_paused=d["start_paused"],
        )
    except ValueError as exc:
        form.add_error(None, str(exc))
        return None
    events.run_changed(run.pk)
    return run


@requires(Capability.RUN)
@require_POST
def dialogue_play(request: HttpRequest, pk: int) -> HttpResponse:
    """The person's action for the side they play: checked here and again by the engine, then stepped by a worker
    (rated as the method says), after which the expert answers."""
    dialogue = dialogue_get_or_404(pk)
    form = HumanActionForm(request.POST)
    waiting = waiting_for_person(dialogue)
    if waiting is None:
        form.add_error(None, "It is not your turn: the dialogue does not wait for a person now.")
    queued = None
    if form.is_valid():
        action_type, argument = form.cleaned_data["action_type"], form.cleaned_data.get("argument") or ""
        dialogue_play_start(
            dialogue_id=dialogue.pk, action_type=action_type, argument=argument, user_id=request.user.pk
        )
        events.dialogue_changed(dialogue.pk, dialogue.run_id)
        queued = "human"
    if request.htmx:
        context = dialogue_state_context(pk, can=capability_map(request.user))
        context.update(queued=queued, play_form=None if queued else form, oob=True)  # morphed by id (ADR 0026)
        return render(request, "inspection/detail.html#dialogue-state", context, status=200 if queued else 400)
    for error in form.errors.get("__all__", []) + form.errors.get("argument", []):
        messages.error(request, error)
    return redirect("dialogue_detail", pk=pk)


@requires(Capability.VIEW)
def dialogue_compare(request: HttpRequest) -> HttpResponse:
    """Two dialogues side by side; without both named, a form to name them."""
    form = CompareForm(request.GET or None)
    if not form.is_valid():
        return render(request, "experiments/compare.html", {"form": form}, status=400 if request.GET else 200)
    comparison = compare(form.cleaned_data["a"], form.cleaned_data["b"])
    return render(request, "experiments/compare.html", {"c": comparison, "form": form})


@requires(Capability.VIEW)
def dialogue_compare_csv(request: HttpRequest) -> HttpResponse:
    """The comparison chart's numbers, as CSV (the same figure the page draws)."""
    if not request.GET:
        return redirect("dialogue_compare")  # the page that asks which two
    form = CompareForm(request.GET)
    if not form.is_valid():
        return HttpResponse("Name two dialogues: ?a=…&b=…", status=400, content_type="text/plain")
    comparison = compare(form.cleaned_data["a"], form.cleaned_data["b"])
    return figure_csv_response(json.loads(comparison.figure), f"compare-{comparison.a.pk}-{comparison.b.pk}")
