"""Each kind of unusable answer and transport error: a bounded retry, then the step fails with the reason.
Nothing is ever replaced by a default action."""

from __future__ import annotations

import json

import pytest

from dialogues.engine.config import RunConfig
from tests.support import llm_answers as a
from tests.support.llm_server import Reply
from tests.support.llm_unusable import UNUSABLE

from .conftest import run_dialogue, run_until_failure

GOOD = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))


@pytest.mark.parametrize(("bad", "message"), UNUSABLE)
def test_one_unusable_answer_is_retried(llm_server, bad, message):
    llm_server.responder = GOOD
    llm_server.script("action.native", bad)
    state, _, calls = run_dialogue(llm_server, RunConfig(judge_samples=3))
    first = [c for c in calls if c.purpose == "action.native"][:2]
    assert message in first[0].error and first[1].error == ""
    assert state.turns[0].action.argument == "turn 0 says something (action.native)"


@pytest.mark.parametrize(("bad", "message"), UNUSABLE)
def test_persistently_unusable_answers_fail_the_dialogue(llm_server, bad, message):
    llm_server.responder = GOOD
    llm_server.script("action.native", *([bad] * 4))
    failure = run_until_failure(llm_server, RunConfig(judge_samples=3, unusable_retries=3))
    assert failure.reason.startswith("action.native at turn 0: no usable answer after 4 tries")
    assert message in failure.reason
    assert len(failure.calls) == 4 and all(message in c.error for c in failure.calls)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transport_errors_are_retried_with_backoff(llm_server, status):
    llm_server.responder = GOOD
    llm_server.script("action.native", Reply(status=status), Reply(status=status))
    state, _, calls = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert calls[0].transport_retries == 2 and calls[0].error == ""
    assert len(state.turns) > 6


def test_persistent_server_errors_fail_the_dialogue(llm_server):
    llm_server.responder = lambda purpose, body: Reply(status=500)
    failure = run_until_failure(llm_server, RunConfig(), transport_retries=2)
    assert failure.reason.startswith("action.native: the LLM server failed: gave up after 3 tries: HTTP 500")
    assert failure.calls[0].transport_retries == 2


def test_timeouts_are_retried_then_fail(llm_server):
    llm_server.responder = lambda purpose, body: Reply(texts=[a.action()], delay=1.0)
    failure = run_until_failure(llm_server, RunConfig(), transport_retries=1, timeout=0.2)
    assert "timeout" in failure.reason and "gave up after 2 tries" in failure.reason


def test_a_client_error_is_not_retried(llm_server):
    llm_server.responder = lambda purpose, body: Reply(status=400, body=json.dumps({"error": "context too long"}))
    failure = run_until_failure(llm_server, RunConfig(), transport_retries=5)
    assert "HTTP 400" in failure.reason and "context too long" in failure.reason
    assert len(llm_server.purposes()) == 1


def test_nsi_answers_are_validated_too(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(7, 7, n))
    bad_utility = json.dumps({"matters": [{"matter": "x", "value": 500, "weight": 1, "ratio": 1}]})
    llm_server.script("nsi.own_utility", bad_utility)
    llm_server.script("nsi.proposal", a.proposal("confirm_proposal"))  # not allowed at the initial proposal
    state, _, calls = run_dialogue(llm_server, RunConfig(judge_samples=3))
    errors = [c.error for c in calls if c.error]
    assert any("value 500 is outside [0, 100]" in e for e in errors)
    assert any("proposal_type 'confirm_proposal' is not one of ['present_proposal']" in e for e in errors)
    assert state.turns[10].proposal.value == "present_proposal"
