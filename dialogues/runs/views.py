"""Runs in the browser: the launcher (with the cost estimate before starting), the runs list with live progress,
a run's page, and pause / resume / cancel."""

from __future__ import annotations

import asyncio

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from dialogues.engine.llm import LLMError
from dialogues.experiments.selectors import batch_summary
from dialogues.inspection.forms import DialogueFilterForm
from dialogues.inspection.selectors import dialogue_page, run_card, run_cards
from dialogues.library import selectors
from dialogues.library.forms import TaskSelectionForm
from dialogues.llm.backends import Backend, configured_backend, make_llm
from dialogues.runs import events
from dialogues.runs.estimates import run_estimate
from dialogues.runs.forms import RunLaunchForm
from dialogues.runs.lifecycle import run_cancel, run_create, run_dispatch, run_pause, run_resume
from dialogues.runs.models import Run
from dialogues.runs.worker import enqueue_steps
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


def _check_served(backend: Backend) -> str | None:
    """Refuse at once if the model is not served (the authors' script stalls for hours on exactly that)."""
    if backend.simulated:
        return None

    async def check() -> None:
        llm = make_llm(backend)
        try:
            await llm.check()
        finally:
            await llm.aclose()

    try:
        asyncio.run(check())
    except LLMError as exc:
        return str(exc)
    return None


@requires(Capability.VIEW)
def run_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(Run.objects.order_by("-id"), 20).get_page(request.GET.get("page"))
    return render(request, "runs/list.html", {"page": page, "cards": run_cards(list(page))})


def _selection(request: HttpRequest) -> TaskSelectionForm:
    return TaskSelectionForm(request.POST or request.GET or None, choices=selectors.task_filter_choices())


@requires(Capability.RUN)
def run_new(request: HttpRequest) -> HttpResponse:
    selection = _selection(request)
    form = RunLaunchForm(request.POST or None, backends=_backends())
    if request.method == "POST" and form.is_valid() and selection.is_valid():
        tasks = selection.tasks()
        backend = _backend(form.cleaned_data["backend"])
        problem = None if tasks else "No task matches the selection."
        problem = problem or _check_served(backend)
        if problem:
            form.add_error(None, problem)
        else:
            config = form.config()
            name = form.cleaned_data["name"] or f"{config.variant.value} · {len(tasks)} tasks"
            with transaction.atomic():
                run = run_create(
                    created_by=request.user,
                    name=name,
                    config=config,
                    tasks=tasks,
                    backend=backend,
                    max_in_flight=form.cleaned_data["max_in_flight"],
                    token_budget=form.cleaned_data["token_budget"],
                    start_paused=form.cleaned_data["start_paused"],
                )
                if not form.cleaned_data["start_paused"]:
                    transaction.on_commit(lambda: enqueue_steps(run_dispatch(run_id=run.pk)))
            return redirect("run_detail", pk=run.pk)
    context = {"form": form, "selection": selection, "backends_configured": CONFIGURED in _backends()}
    return render(request, "runs/new.html", context, status=400 if form.errors else 200)


@requires(Capability.RUN)
def run_estimate_view(request: HttpRequest) -> HttpResponse:
    """The launcher's live panel: how many tasks the selection holds and what the run will cost."""
    selection = _selection(request)
    form = RunLaunchForm(request.POST or None, backends=_backends())
    tasks = selection.tasks() if selection.is_valid() else []
    context = {"tasks": tasks, "hard": sum(t.hard for t in tasks), "form": form}
    if form.is_valid() and tasks:
        backend = _backend(form.cleaned_data["backend"])
        context["estimate"] = run_estimate(
            config=form.config(), tasks=len(tasks), hard=context["hard"], model=backend.model
        )
    return render(request, "runs/new.html#estimate", context)


@requires(Capability.VIEW)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    form = DialogueFilterForm(request.GET or None)
    page, rows = dialogue_page(form.filters(run=run.pk), request.GET.get("page"), 50)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "card": run_card(run),
        "run": run,
        "form": form,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
        "config": run.config,
        "list_url": request.path,
        "experiment": batch_summary(run),
    }
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        return render(request, "inspection/list.html#dialogue-results", context)
    return render(request, "runs/detail.html", context)


@requires(Capability.RUN)
@require_POST
def run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    if action == "pause":
        run_pause(run_id=run.pk)
    elif action == "resume":
        try:
            with transaction.atomic():
                dispatches = run_resume(run_id=run.pk)
                transaction.on_commit(lambda: enqueue_steps(dispatches))
        except ValueError as exc:
            messages.error(request, str(exc))
    elif action == "cancel":
        run_cancel(run_id=run.pk)
    else:
        raise Http404("Unknown action.")
    events.run_changed(run.pk)
    if request.htmx:
        card = run_card(Run.objects.get(pk=run.pk))
        template = "runs/list.html#run-row" if request.POST.get("from") == "list" else ("runs/detail.html#run-progress")
        return render(request, template, {"card": card})
    return redirect_back(request, "run_detail", pk=run.pk)


def redirect_back(request: HttpRequest, fallback: str, **kwargs: object) -> HttpResponse:
    """To the page the form came from (`next`, if it is ours), else to `fallback`."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(fallback, **kwargs)
