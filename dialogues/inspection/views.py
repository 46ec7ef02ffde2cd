"""Dialogues and runs in the browser: the dialogue list (filters, text search, sort), one dialogue turn by turn with
every decision, its LLM calls on demand, and the buttons that step, run or pause it; the runs list with live
progress, a run's page (its dialogues, and a fork run's batch outcome), and pause / resume / cancel."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from dialogues.common.figure_csv import figure_csv_response
from dialogues.common.http import redirect_back
from dialogues.inspection.charts import rating_chart
from dialogues.inspection.dialogue_list import dialogue_page
from dialogues.inspection.forks import batch_summary, change_rows, forks_of
from dialogues.inspection.forms import DialogueFilterForm
from dialogues.inspection.selectors import (
    attempts_of,
    dialogue_live_context,
    dialogue_state_context,
    newest_run_id,
    rendered_turns,
    run_card,
    run_cards,
    runs_page,
    turn_views,
)
from dialogues.runs import events
from dialogues.runs.lifecycle import dialogue_pause, run_cancel, run_pause
from dialogues.runs.models import Dialogue, LLMCall, Run
from dialogues.runs.selectors import dialogue_config, dialogue_get_or_404
from dialogues.runs.starting import dialogue_resume_start, dialogue_step_start, run_resume_start
from omega_web.roles import Capability, capability_map, requires

PAGE_SIZE = 50  # dialogues per page


def _results_only(request: HttpRequest) -> bool:
    """An htmx request from the filters: only the results are swapped."""
    return bool(request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request)


@requires(Capability.VIEW)
def dialogue_index(request: HttpRequest) -> HttpResponse:
    form = DialogueFilterForm(request.GET or None)
    page, rows = dialogue_page(form.filters(), request.GET.get("page"), PAGE_SIZE)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
        "list_url": request.path,
    }
    template = "inspection/list.html"
    if _results_only(request):
        template += "#dialogue-results"
    return render(request, template, context)


def state_fragment(request: HttpRequest, pk: int, *, status: int = 200, **extra: object) -> HttpResponse:
    """The dialogue page's state panel, drawn fresh, for an htmx answer to an action on the dialogue."""
    context = dialogue_state_context(pk, can=capability_map(request.user))
    context.update(extra)
    return render(request, "inspection/detail.html#dialogue-state", context, status=status)


@requires(Capability.VIEW)
def dialogue_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dialogue = dialogue_get_or_404(pk)
    views = turn_views(dialogue)
    can = capability_map(request.user)
    context = dialogue_live_context(dialogue, views, can=can)
    # Reading is the default; annotating (every turn's controls shown) is asked for by ?annotate=1, which the
    # annotation queue's links carry. The page switches between the two in place (the toggle, or the m key).
    annotating = bool(can.get("annotate")) and request.GET.get("annotate") == "1"
    context.update(
        {
            "mode": "annotating" if annotating else "reading",
            "turn_html": rendered_turns(dialogue, views),
            "attempts": attempts_of(dialogue),
            "task": dialogue.task,
            "run": dialogue.run,
            "forks": [{"dialogue": f, "changes": change_rows(f)} for f in forks_of(dialogue)],
            "fork_changes": change_rows(dialogue) if dialogue.parent_id or dialogue.run.is_fork else [],
        }
    )
    return render(request, "inspection/detail.html", context)


@requires(Capability.VIEW)
def dialogue_ratings_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """The rating chart's numbers: the same figure the page draws, as CSV."""
    dialogue = dialogue_get_or_404(pk)
    figure = rating_chart(turn_views(dialogue), dialogue_config(dialogue))
    return figure_csv_response(figure, f"dialogue-{dialogue.pk}-ratings")


@requires(Capability.VIEW)
def dialogue_call(request: HttpRequest, pk: int, call_id: int) -> HttpResponse:
    """One LLM call in full (loaded only when opened): the prompt, the raw responses, the parsed result."""
    call = get_object_or_404(LLMCall, pk=call_id, dialogue_id=pk)
    context = {
        "call": call,
        "prompt": "\n\n".join(f"[{m.get('role', '')}]\n{m.get('content', '')}" for m in call.messages),
        "parsed": json.dumps(call.parsed, indent=1, ensure_ascii=False) if call.parsed is not None else "",
        "params": json.dumps(call.params, ensure_ascii=False),
    }
    return render(request, "inspection/_call.html", context)


@requires(Capability.RUN)
@require_POST
def dialogue_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    dialogue = get_object_or_404(Dialogue.objects.select_related("run"), pk=pk)
    if action == "step":
        dialogue_step_start(dialogue_id=dialogue.pk)
    elif action == "run":
        dialogue_resume_start(dialogue_id=dialogue.pk)
    elif action == "pause":
        dialogue_pause(dialogue_id=dialogue.pk)
    else:
        raise Http404("Unknown action.")
    events.dialogue_changed(dialogue.pk, dialogue.run_id)
    if request.htmx:
        return state_fragment(request, pk, queued=action, oob=True)
    return redirect_back(request, "dialogue_detail", pk=pk)


@requires(Capability.VIEW)
def run_list(request: HttpRequest) -> HttpResponse:
    newest = newest_run_id()  # first: a run launched while the page is drawn then reaches it live, as a new row
    page = runs_page(request.GET.get("page"), newest=newest)
    return render(request, "runs/list.html", {"page": page, "cards": run_cards(list(page)), "newest": newest})


@requires(Capability.VIEW)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    form = DialogueFilterForm(request.GET or None)
    page, rows = dialogue_page(form.filters(run=run.pk), request.GET.get("page"), PAGE_SIZE)
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
    if _results_only(request):
        return render(request, "inspection/list.html#dialogue-results", context)
    return render(request, "runs/detail.html", context)


@requires(Capability.RUN)
@require_POST
def run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Pause, resume or cancel a run; the answer is the run's row (from the list) or progress card, redrawn and
    morphed in place by its id."""
    run = get_object_or_404(Run, pk=pk)
    if action == "pause":
        run_pause(run_id=run.pk)
    elif action == "resume":
        try:
            run_resume_start(run_id=run.pk)
        except ValueError as exc:
            messages.error(request, str(exc))
    elif action == "cancel":
        run_cancel(run_id=run.pk)
    else:
        raise Http404("Unknown action.")
    events.run_changed(run.pk)
    if request.htmx:
        # out of band, morphed by id like the live updates (the buttons swap nothing themselves: ADR 0026)
        card = run_card(Run.objects.get(pk=run.pk))
        template = "runs/list.html#run-row" if request.POST.get("from") == "list" else "runs/detail.html#run-progress"
        return render(request, template, {"card": card, "oob": True})
    return redirect_back(request, "run_detail", pk=run.pk)
