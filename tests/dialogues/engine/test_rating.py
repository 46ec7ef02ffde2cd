"""Step rating: aggregation of judge samples, dropped and re-asked samples, strict termination."""

from __future__ import annotations

import json

import pytest

from dialogues.engine.actions import UnusableAnswer
from dialogues.engine.config import RunConfig
from dialogues.engine.rating import RATING_JSON_SCHEMA, STEPS, Rating, parse_sample
from tests.support import llm_answers as a
from tests.support.llm_server import Reply

from .conftest import run_dialogue, run_until_failure


def rating_of(*texts: str) -> Rating:
    parsed = [parse_sample(t) for t in texts]
    return Rating(tuple(parsed), requested=len(texts))


@pytest.mark.parametrize(
    ("scores", "goal_c", "goal_p", "terminate"),
    [
        pytest.param([(7, 7, 7, 7), (7, 7, 7, 7), (7, 7, 8, 7)], 7.0, 7.1667, False, id="worked-case-after-5"),
        pytest.param([(8, 8, 9, 9), (8, 9, 9, 9), (8, 9, 8, 9)], 8.3333, 8.8333, False, id="worked-case-after-14"),
        pytest.param([(10, 0, 5, 5, 1), (6, 6, 6, 6, 0)], 5.5, 5.5, True, id="one-vote-ends-it"),
        pytest.param([(9, 9, 9, 9, 1)] * 5, 9.0, 9.0, False, id="five-agree"),
    ],
)
def test_aggregation(scores, goal_c, goal_p, terminate):
    rating = rating_of(*(a.sample(*s) for s in scores))
    assert rating.goal_c == pytest.approx(goal_c, abs=1e-4)
    assert rating.goal_p == pytest.approx(goal_p, abs=1e-4)
    assert rating.terminate is terminate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(a.sample(11, 5, 5, 5), "outside 0–10", id="score-above-10"),
        pytest.param(a.sample(5, 5, 5, 5, 2), "outside 0–1", id="step5-not-binary"),
        pytest.param(a.sample(5, 5, 5, 5).replace('"score": 5', '"score": 5.5', 1), "not an integer", id="fraction"),
        pytest.param('{"step1": {"analysis": "x", "score": 5}}', "missing step2", id="missing-step"),
        pytest.param(a.sample(5, 5, 5, 5).replace('"score": 5', '"score": "high"', 1), "not a number", id="words"),
        pytest.param("I think both did well.", "no JSON", id="prose"),
    ],
)
def test_malformed_samples(text, message):
    with pytest.raises(UnusableAnswer, match=message):
        parse_sample(text)


def test_string_scores_are_read():
    assert parse_sample(a.sample(5, 5, 5, 5).replace('"score": 5', '"score": "7"', 1)).scores["step1"] == 7


def test_malformed_samples_are_dropped_and_asked_again(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
    # the first rating request (after turn 5) returns 2 garbage samples of 5; the re-ask asks for exactly 2
    llm_server.script("rating", [*a.uniform(9, 9, 3), "not json", a.sample(12, 1, 1, 1)], a.uniform(9, 9, 2, end=True))
    state, _, calls = run_dialogue(llm_server, RunConfig(judge_samples=5))
    rating = state.turns[5].rating
    assert rating["valid"] == 5 and rating["requested"] == 5
    assert [r["reason"] for r in rating["rejected"]] == [
        "no JSON object in the answer: 'not json'",
        "step1 score 12 is outside 0–10",
    ]
    rating_requests = [r["body"] for r in llm_server.requests if r["purpose"] == "rating"]
    assert [b["n"] for b in rating_requests[:2]] == [5, 2]
    first_rating_call = next(c for c in calls if c.purpose == "rating")
    assert first_rating_call.error and len(first_rating_call.responses) == 5


def test_too_few_valid_samples_fail_the_step(llm_server):
    llm_server.responder = a.responder(lambda turn, n: ["garbage"] * n)
    failure = run_until_failure(llm_server, RunConfig(judge_samples=5, judge_reasks=2))
    assert "step rating after turn 5: 0 of 5 judge samples usable after 2 re-asks" in failure.reason
    assert sum(c.purpose == "rating" for c in failure.calls) == 3  # one request and two re-asks


def test_judge_temperature_and_n_in_one_request(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
    run_dialogue(llm_server, RunConfig(judge_samples=5))
    body = next(r["body"] for r in llm_server.requests if r["purpose"] == "rating")
    assert body["n"] == 5 and body["temperature"] == 1.0
    assert body["response_format"]["type"] == "json_schema"


def test_empty_choices_count_as_missing_samples(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
    llm_server.script("rating", Reply(no_choices=True))
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert state.turns[5].rating["valid"] == 3


@pytest.mark.parametrize("step", STEPS)
def test_the_rating_schema_lists_exactly_the_scores_the_parser_takes(step):
    """llama-cpp-python's grammar ignores an integer's minimum and maximum but enforces an enum: the schema gives
    both, and the enum holds exactly the scores parse_sample accepts."""
    score = RATING_JSON_SCHEMA["properties"][step]["properties"]["score"]
    for value in range(-3, 14):
        answer = json.dumps({s: {"analysis": "", "score": value if s == step else 1} for s in STEPS})
        try:
            parse_sample(answer)
            taken = True
        except UnusableAnswer:
            taken = False
        assert taken is (value in score["enum"]) is (score["minimum"] <= value <= score["maximum"]), value
