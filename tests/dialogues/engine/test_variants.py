"""Each variant's branch sequence, the termination vote, and the negotiation exit (with the turn limit inside
it), driven turn by turn through the real client and the test LLM server."""

from __future__ import annotations

import pytest

from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.state import EndReason
from tests.support import llm_answers as a

from .conftest import branch_row, run_dialogue

NATIVE = ["NSC"] * 6
NSI_FULL = ["NSI:resource"] * 2 + ["NSI:assessment"] * 2 + ["NSI:initial:present"] * 2
EXIT = ["NSI:exit:confirm", "NSC", "leave!", "leave!"]


def deadlock_then_agreement(turn: int, n: int) -> list[str]:
    """Goal stalls at 7 after turn 5; after the agreement it reaches 8."""
    if turn == 5:
        return a.uniform(7, 7, n)
    return a.uniform(8, 8, n, end=turn >= 15)


def test_dsi_deadlock_runs_the_whole_workflow(llm_server):
    llm_server.responder = a.responder(deadlock_then_agreement)
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert branch_row(state) == NATIVE + NSI_FULL + ["NSI:update:revise", "NSI:update:confirm"] + EXIT
    rated = [t.index for t in state.turns if t.rating]
    assert rated == [5, 14, 15]  # no rating while the workflow runs
    assert state.turns[6].reason.startswith("after turn 5: goal_c 7.00, goal_p 7.00")
    assert state.turns[14].forced and state.turns[15].speaker == state.turns[13].speaker  # the first confirmer


def test_dsi_picks_ssi_then_nsc_then_leaves_on_a_strict_vote(llm_server):
    plan = {5: (8, 8, False), 6: (8, 9, False), 7: (9, 9, False), 8: (9, 9, True)}

    def rating(turn, n):
        c, p, end = plan[turn]
        return a.uniform(c, p, n, end=end)

    llm_server.responder = a.responder(rating)
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=5))
    assert branch_row(state) == NATIVE + ["SSI", "NSC", "NSC", "leave!", "leave!"]
    assert state.turns[9].reason.startswith("1 of 5 judge samples after turn 8 voted to end")
    assert plan_end(state) == EndReason.BOTH_LEFT


def plan_end(state):
    from dialogues.engine.plan import plan

    return plan(state).end_reason


def test_raw_never_injects(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(6, 6, n, end=turn >= 9))
    state, _, _ = run_dialogue(llm_server, RunConfig(variant=Variant.RAW, judge_samples=3))
    assert branch_row(state) == NATIVE + ["NSC"] * 4 + ["leave!", "leave!"]
    assert all(t.rating for t in state.turns[5:10])


def test_nsi_variant_starts_at_turn_6_whatever_the_rating(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
    state, _, _ = run_dialogue(llm_server, RunConfig(variant=Variant.NSI, judge_samples=3))
    assert branch_row(state) == NATIVE + NSI_FULL + ["NSI:update:revise", "NSI:update:confirm"] + EXIT
    assert "regardless of ratings" in state.turns[6].reason


@pytest.mark.parametrize("side", [0, 1])
def test_half_nsi_one_side_negotiates(llm_server, side):
    llm_server.responder = a.responder(
        lambda turn, n: a.uniform(8, 8, n), proposals=iter(["revise_proposal", "confirm_proposal"])
    )
    state, _, _ = run_dialogue(llm_server, RunConfig(variant=Variant.HNSI, judge_samples=3), nsi_side=side)
    workflow = [t for t in state.turns[6:] if t.branch.value == "NSI"]
    assert {t.speaker for t in workflow} == {side}
    steps = [t.nsi_step.value.split("_")[0] for t in workflow]
    assert steps == ["resource", "assessment", "initial", "update", "update"]
    confirm = workflow[-1].index
    assert [t.branch.value for t in state.turns[confirm + 1 : confirm + 3]] == ["NSC", "NSC"]
    assert [t.is_leave and t.forced for t in state.turns[confirm + 3 :]] == [True, True]
    plain_side = [t for t in state.turns[6:confirm] if t.speaker != side]
    assert plain_side and all(t.branch.value == "NSC" and t.rating is None for t in plain_side)


def test_turn_limit_inside_the_workflow_stops_it_with_a_closing_rating(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(7, 7, n), proposals=iter(["revise_proposal"] * 20))
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert len(state.turns) == 20 and plan_end(state) == EndReason.TURN_LIMIT
    assert state.turns[-1].branch.value == "NSI" and state.turns[-1].rating.get("closing") is True
    assert [t.index for t in state.turns if t.rating] == [5, 19]


@pytest.mark.parametrize(
    ("overrun", "turns", "end"),
    [
        pytest.param(0, 20, EndReason.TURN_LIMIT, id="paper-limit-20"),
        pytest.param(3, 22, EndReason.BOTH_LEFT, id="script-overrun-3"),
    ],
)
def test_exit_near_the_limit(llm_server, overrun, turns, end):
    # present, present, then revisions until the confirm lands on turn 17: the exit needs turns 18-21
    llm_server.responder = a.responder(
        deadlock_then_agreement, proposals=iter(["revise_proposal"] * 5 + ["confirm_proposal"])
    )
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3, exit_overrun_turns=overrun))
    assert state.first_confirm == 17
    assert len(state.turns) == turns and plan_end(state) == end


def test_voluntary_leave_makes_the_other_leave(llm_server):
    def act(turn):
        return a.action("", "leave") if turn == 3 else a.action(f"turn {turn}")

    llm_server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n), act=act)
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert branch_row(state) == ["NSC", "NSC", "NSC", "leave", "leave!"]
    # nothing was rated in the native start, so the end takes a closing rating
    assert state.turns[-1].rating.get("closing") is True


def test_three_nones_end_the_dialogue(llm_server):
    llm_server.responder = a.responder(
        lambda turn, n: a.uniform(9, 9, n), act=lambda turn: a.action("", "none") if turn >= 1 else a.action("hi")
    )
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert len(state.turns) == 4 and plan_end(state) == EndReason.NONE_LIMIT


def test_a_termination_vote_ends_the_dialogue_even_when_nsi_is_due(llm_server):
    """Strict termination (paper, the default): the vote wins over starting the workflow."""
    llm_server.responder = a.responder(lambda turn, n: a.uniform(7, 7, n, end=True))
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert branch_row(state) == NATIVE + ["leave!", "leave!"]


def test_the_script_starts_nsi_despite_the_vote(llm_server):
    llm_server.responder = a.responder(lambda turn, n: a.uniform(7, 7, n, end=True))
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3, termination_overrides_nsi=False))
    assert branch_row(state)[6] == "NSI:resource"
    assert "the workflow takes precedence over the termination vote" in state.turns[6].reason


def test_a_leave_on_the_last_turn_is_not_answered_past_the_limit(llm_server):
    llm_server.responder = a.responder(
        lambda turn, n: a.uniform(9, 9, n), act=lambda turn: a.action("", "leave") if turn == 19 else a.action("x")
    )
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3, variant=Variant.RAW))
    assert len(state.turns) == 20 and state.turns[-1].is_leave and plan_end(state) == EndReason.TURN_LIMIT
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3, variant=Variant.RAW, exit_overrun_turns=1))
    assert len(state.turns) == 21 and plan_end(state) == EndReason.BOTH_LEFT


def test_the_script_utility_form_asks_for_coefficients(llm_server):
    import json

    script_utility = json.dumps(
        {
            "thought": "t",
            "matters": [
                {"matter": "money", "value": 300, "coefficient": 0.5},
                {"matter": "friendship", "value": 10, "coefficient": 2},
            ],
        }
    )
    answer = a.responder(deadlock_then_agreement)

    def responder(purpose, body):
        if purpose in {"nsi.own_utility", "nsi.other_utility"}:
            return script_utility
        if purpose == "nsi.update":
            matters = json.loads(script_utility)["matters"]
            return json.dumps({"thought": "t", "own_matters": matters, "other_matters": matters, "draft": "d"})
        return answer(purpose, body)

    llm_server.responder = responder
    state, _, _ = run_dialogue(llm_server, RunConfig(judge_samples=3, utility_form="script"))
    assert state.turns[6].own_utility["U"] == 170.0 and state.turns[6].own_utility["form"] == "script"
    prompt = next(r["body"] for r in llm_server.requests if r["purpose"] == "nsi.own_utility")["messages"][0]
    assert '"coefficient"' in prompt["content"] and '"ratio"' not in prompt["content"]


def _texts_required_non_empty(schema: dict, path: str = "") -> dict[str, int]:
    """Every string field of a JSON schema, by its path, with its minLength (0 when it may be empty)."""
    found = {}
    for name, sub in schema.get("properties", {}).items():
        if sub.get("type") == "string" and "enum" not in sub:
            found[f"{path}{name}"] = sub.get("minLength", 0)
        found |= _texts_required_non_empty(sub, f"{path}{name}.")
    if "items" in schema:
        found |= _texts_required_non_empty(schema["items"], f"{path}[].")
    return found


def test_the_workflow_schemas_require_the_texts_its_parsers_require(llm_server):
    """A server with a grammar (llama.cpp) enforces a schema: a matter's description, a draft and what the agent
    says are never empty there, as the parsers require; free reasoning ("thought") may be."""
    llm_server.responder = a.responder(deadlock_then_agreement)
    run_dialogue(llm_server, RunConfig(judge_samples=3))
    texts = {}
    for request in llm_server.requests:
        if request["purpose"].startswith("nsi.") and "response_format" in request["body"]:
            schema = request["body"]["response_format"]["json_schema"]["schema"]
            texts[request["purpose"]] = _texts_required_non_empty(schema)
    assert texts == {
        "nsi.own_utility": {"thought": 0, "matters.[].matter": 1},
        "nsi.interests": {"argument": 1},
        "nsi.other_utility": {"thought": 0, "matters.[].matter": 1},
        "nsi.difference": {"argument": 1},
        "nsi.proposal_draft": {"thought": 0, "draft": 1},
        "nsi.proposal": {"argument": 1},
        "nsi.update": {"thought": 0, "own_matters.[].matter": 1, "other_matters.[].matter": 1, "draft": 1},
        "nsi.confirm": {"argument": 1},
    }
