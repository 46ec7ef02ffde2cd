"""Launching runs in the browser: the launcher (the task selection and every parameter of a run) with the cost
estimate before starting. The run pages (list, a run's page, pause / resume / cancel) are inspection's."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from dialogues.library import selectors
from dialogues.library.forms import TaskSelectionForm
from dialogues.llm.backends import Backend, backend_probe, configured_backend
from dialogues.runs.cost import run_cost
from dialogues.runs.estimates import Estimate, launch_confirmation_reasons, run_estimate
from dialogues.runs.forms import RunLaunchForm
from dialogues.runs.models import Run
from dialogues.runs.starting import run_launch
from omega_web.roles import Capability, requires

SIMULATED = "simulated"
CONFIGURED = "configured"


def _backends() -> dict[str, str]:
    choices = {}
    configured = configured_backend()
    if not configured.simulated:
        choices[CONFIGURED] = f"{configured.model} at {', '.join(configured.base_urls)}"
    choices[SIMULATED] = "Simulated expert (offline, deterministic; every dialogue is labelled simulated)"
    return choices


def _backend(choice: str) -> Backend:
    return configured_backend(simulated=choice != CONFIGURED)


def _selection(request: HttpRequest) -> TaskSelectionForm:
    return TaskSelectionForm(request.POST or request.GET or None, choices=selectors.task_filter_choices())


CONFIRM = "confirm"  # the confirmation's button: its value is the number of tasks confirmed
EDIT = "edit"  # the confirmation's way back to the launcher, everything as chosen
NOT_RESENT = {"csrfmiddlewaretoken", CONFIRM, EDIT}


@requires(Capability.RUN)
def run_new(request: HttpRequest) -> HttpResponse:
    """The launcher. A launch over the thresholds (launch_confirmation_reasons) is shown again as a confirmation
    that repeats the estimate, and starts only when confirmed for the same number of tasks."""
    selection = _selection(request)
    form = RunLaunchForm(request.POST or None, backends=_backends())
    launching = request.method == "POST" and EDIT not in request.POST
    if launching and form.is_valid() and selection.is_valid():
        tasks = selection.tasks()
        backend = _backend(form.cleaned_data["backend"])
        probe = backend_probe(backend) if tasks else None
        problem = probe.problem if probe else "No task matches the selection."
        if problem:
            form.add_error(None, problem)
        else:
            config = form.config()
            hard = sum(t.hard for t in tasks)
            estimate = run_estimate(config=config, tasks=len(tasks), hard=hard, model=backend.model)
            reasons = launch_confirmation_reasons(estimate)
            if reasons and request.POST.get(CONFIRM) != str(len(tasks)):
                return _confirmation(request, estimate=estimate, hard=hard, reasons=reasons)
            name = form.cleaned_data["name"] or f"{config.variant.value} · {len(tasks)} tasks"
            run = run_launch(
                created_by=request.user,
                name=name,
                config=config,
                tasks=tasks,
                backend=backend,
                max_in_flight=form.cleaned_data["max_in_flight"],
                token_budget=form.cleaned_data["token_budget"],
                start_paused=form.cleaned_data["start_paused"],
                server_profiles=probe.as_json() if probe else [],
                prompt_set=form.chosen_prompt_set(),
            )
            return redirect("run_detail", pk=run.pk)
    refused = launching and bool(form.errors or selection.errors)
    context = {"form": form, "selection": selection, "backends_configured": CONFIGURED in _backends()}
    return render(request, "runs/new.html", context, status=400 if refused else 200)


def _confirmation(request: HttpRequest, *, estimate: Estimate, hard: int, reasons: list[str]) -> HttpResponse:
    """The launch shown again before it starts: the estimate, why it asks, and every choice carried along."""
    carried = [(name, value) for name in request.POST if name not in NOT_RESENT for value in request.POST.getlist(name)]
    context = {"estimate": estimate, "hard": hard, "reasons": reasons, "carried": carried, "confirm": CONFIRM}
    return render(request, "runs/confirm.html", context)


@requires(Capability.RUN)
def run_server_check(request: HttpRequest) -> HttpResponse:
    """The launcher's model check: whether the chosen backend's model is served, and what each of its servers can
    do (the profile the run will record)."""
    choice = request.GET.get("backend", CONFIGURED if CONFIGURED in _backends() else SIMULATED)
    backend = _backend(choice if choice in _backends() else SIMULATED)
    probe = backend_probe(backend)
    context = {"profiles": probe.as_json(), "problem": probe.problem, "simulated": backend.simulated}
    return render(request, "runs/_server_profiles.html", context)


@requires(Capability.RUN)
def run_estimate_view(request: HttpRequest) -> HttpResponse:
    """The launcher's live panel: how many tasks the selection holds and what the run will cost."""
    selection = _selection(request)
    form = RunLaunchForm(request.POST or None, backends=_backends())
    tasks = selection.tasks() if selection.is_valid() else []
    context = {"tasks": tasks, "hard": sum(t.hard for t in tasks), "form": form, "selection": selection}
    if form.is_valid() and tasks:
        backend = _backend(form.cleaned_data["backend"])
        estimate = run_estimate(config=form.config(), tasks=len(tasks), hard=context["hard"], model=backend.model)
        context.update(estimate=estimate, confirm_reasons=launch_confirmation_reasons(estimate))
    return render(request, "runs/new.html#estimate", context)


@requires(Capability.VIEW)
def run_cost_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The run page's panel of what the run cost the model server (loaded after the page: it sums every call)."""
    run = get_object_or_404(Run, pk=pk)
    return render(request, "runs/_cost.html", {"run": run, "cost": run_cost(run)})
