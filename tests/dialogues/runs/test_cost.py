"""What a run cost the model server (ADR 0028): the cached tokens a server reports are read from its usage, stored
per call, summed on the run page by call kind and used by the launcher's estimate; without them the page and the
estimate say the prefill is estimated from the bench's share."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dialogues.engine.config import RunConfig
from dialogues.library.models import Task
from dialogues.runs.cost import BENCH_PREFILL_SHARE, call_kind, run_cost
from dialogues.runs.estimates import run_estimate
from dialogues.runs.models import LLMCall
from omega_web.roles import Role
from tests.factories import served_run
from tests.support import llm_answers as a
from tests.support.llm_server import ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)


def run_against(server: ScriptedLLMServer):
    server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=turn >= 6))
    return served_run(server, [Task.objects.get(external_id="omega-demo-task-04")])


def test_reported_cached_tokens_are_stored_summed_and_shown(demo_tasks, client_for):
    with ScriptedLLMServer(report_cached=True) as server:
        run = run_against(server)
    calls = list(LLMCall.objects.filter(dialogue__run=run))
    assert calls and all(c.cached_tokens is not None for c in calls)
    # the first prompt shares nothing; a later action repeats its side's framing, context and history
    first = min(calls, key=lambda c: c.pk)
    assert first.cached_tokens == 0 and max(c.cached_tokens for c in calls) > 100
    cost = run_cost(run)
    prompt, cached = sum(c.prompt_tokens for c in calls), sum(c.cached_tokens for c in calls)
    assert cost.reporting == "all" and cost.total.prompt_tokens == prompt
    assert cost.total.prefill_tokens == prompt - cached
    assert {k.kind for k in cost.kinds} == {"action", "rating"}
    rating = next(k for k in cost.kinds if k.kind == "rating")
    assert rating.sequences == 3 * rating.requests  # three judge samples in one request
    assert cost.attempts == 1 and cost.per_attempt["prefill_tokens"] == prompt - cached

    viewer = client_for(Role.VIEWER)
    page = viewer.get(reverse("run_cost", args=[run.pk])).content.decode()
    assert 'data-prefill="measured"' in page and "usage.prompt_tokens_details.cached_tokens" in page
    assert f"{prompt - cached:,}" in page and "not reported" not in page
    detail = viewer.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert reverse("run_cost", args=[run.pk]) in detail  # the page loads the panel
    shared = max(calls, key=lambda c: c.cached_tokens)
    opened = viewer.get(reverse("dialogue_call", args=[shared.dialogue_id, shared.pk])).content.decode()
    assert f"{shared.cached_tokens} of the prompt cached, as the server reported" in opened

    estimate = run_estimate(config=RunConfig(judge_samples=3), tasks=10, hard=5, model=server.model)
    assert estimate.prefill_reported and estimate.prefill_share == pytest.approx(1 - cached / prompt)
    assert "as the server reported cached tokens" in estimate.describe()


def test_without_reported_cached_tokens_the_prefill_is_estimated(demo_tasks, client_for):
    with ScriptedLLMServer() as server:
        run = run_against(server)
    assert not LLMCall.objects.filter(dialogue__run=run, cached_tokens__isnull=False).exists()
    cost = run_cost(run)
    assert cost.reporting == "none" and cost.total.prefill_tokens is None
    page = client_for(Role.VIEWER).get(reverse("run_cost", args=[run.pk])).content.decode()
    assert 'data-prefill="estimated"' in page and "--enable-prompt-tokens-details" in page
    assert "The server did not report cached tokens" in page
    assert f"{cost.total.prompt_tokens * BENCH_PREFILL_SHARE:,.0f}" in page and "not reported" in page

    estimate = run_estimate(config=RunConfig(judge_samples=3), tasks=10, hard=5, model=server.model)
    assert not estimate.prefill_reported and estimate.prefill_share == BENCH_PREFILL_SHARE
    assert estimate.prefill_tokens == pytest.approx(estimate.prompt_tokens * BENCH_PREFILL_SHARE)
    assert "needing prefill" in estimate.describe() and "make bench cache" in estimate.describe()


def test_the_panel_needs_a_login(demo_tasks, client):
    with ScriptedLLMServer() as server:
        run = run_against(server)
    answer = client.get(reverse("run_cost", args=[run.pk]))
    assert answer.status_code == 302 and "login" in answer["Location"]


@pytest.mark.parametrize(
    ("purpose", "kind"),
    [("action.native", "action"), ("action.ssi", "action"), ("rating", "rating"), ("nsi.update", "negotiation"),
     ("nsi.confirm", "negotiation"), ("nsi.style_transfer", "style transfer"), ("eval.sotopia", "other")],
)  # fmt: skip
def test_call_kinds(purpose, kind):
    assert call_kind(purpose) == kind
