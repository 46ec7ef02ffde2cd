"""Dialogues in the browser: the list (filters, text search, sort), one dialogue turn by turn with every
decision, its LLM calls on demand, and stepping by hand."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from dialogues.experiments.selectors import change_rows
from dialogues.experiments.services import forks_of
from dialogues.inspection.forms import DialogueFilterForm
from dialogues.inspection.selectors import (
    attempts_of,
    dialogue_get,
    dialogue_live_context,
    dialogue_page,
    rendered_turns,
    turn_views,
)
from dialogues.runs import events
from dialogues.runs.lifecycle import dialogue_pause, dialogue_resume
from dialogues.runs.models import Dialogue, LLMCall
from dialogues.runs.tasks import dialogue_manual_step_task
from dialogues.runs.views import redirect_back
from dialogues.runs.worker import enqueue_steps
from omega_web.roles import Capability, capability_map, requires

PAGE_SIZE = 50


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
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#dialogue-results"
    return render(request, template, context)


def dialogue_or_404(pk: int) -> Dialogue:
    """The dialogue with its run and task (the dialogue views' lookup), or a 404."""
    try:
        return dialogue_get(pk)
    except Dialogue.DoesNotExist as missing:
        raise Http404("No such dialogue.") from missing


def state_fragment(request: HttpRequest, pk: int, *, status: int = 200, **extra: object) -> HttpResponse:
    """The dialogue page's state panel, drawn fresh, for an htmx answer to an action on the dialogue."""
    fresh = dialogue_get(pk)
    context = dialogue_live_context(fresh, turn_views(fresh), can=capability_map(request.user))
    context.update(extra)
    return render(request, "inspection/detail.html#dialogue-state", context, status=status)


@requires(Capability.VIEW)
def dialogue_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dialogue = dialogue_or_404(pk)
    views = turn_views(dialogue)
    context = dialogue_live_context(dialogue, views, can=capability_map(request.user))
    context.update(
        {
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
        transaction.on_commit(lambda: dialogue_manual_step_task.delay(dialogue.pk))
    elif action == "run":
        with transaction.atomic():
            dispatches = dialogue_resume(dialogue_id=dialogue.pk)
            transaction.on_commit(lambda: enqueue_steps(dispatches))
    elif action == "pause":
        dialogue_pause(dialogue_id=dialogue.pk)
    else:
        raise Http404("Unknown action.")
    events.dialogue_changed(dialogue.pk, dialogue.run_id)
    if request.htmx:
        return state_fragment(request, pk, queued=action)
    return redirect_back(request, "dialogue_detail", pk=pk)
