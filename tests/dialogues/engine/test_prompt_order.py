"""Prompts ordered for a server's prefix cache (ADR 0028): what one side's calls share comes first and word for word
(the agent prompt's framing, the context, the history), and what varies comes last. Checked on the prompts a whole
DSI dialogue sends through the real client, and with the bench's model of vLLM's cache."""

from __future__ import annotations

from bench.prefix_cache import CacheModel, TokenCounter
from dialogues.engine.config import RunConfig
from dialogues.engine.context import agent_context, omniscient_context
from dialogues.engine.stepper import agent_prompt
from tests.support import llm_answers as a

from .conftest import TASK, run_dialogue
from .test_variants import deadlock_then_agreement

NSI_REASONING = {"nsi.own_utility", "nsi.interests", "nsi.other_utility", "nsi.difference", "nsi.proposal_draft",
                 "nsi.update", "nsi.proposal", "nsi.confirm"}  # fmt: skip


def dsi_dialogue(llm_server):
    llm_server.responder = a.responder(deadlock_then_agreement)
    state, _, calls = run_dialogue(llm_server, RunConfig(judge_samples=3))
    assert {c.purpose for c in calls} >= NSI_REASONING | {"nsi.style_transfer", "rating", "action.native"}
    return state, calls


def test_every_prompt_of_a_side_opens_with_its_agent_prompt(llm_server):
    state, calls = dsi_dialogue(llm_server)
    for call in calls:
        if call.purpose == "rating":
            continue
        speaker = state.turns[call.turn_index].speaker
        prompt = call.messages[0]["content"]
        native = agent_prompt(state, speaker, call.turn_index)
        through_context = native[: native.index(agent_context(TASK, speaker)) + len(agent_context(TASK, speaker))]
        assert prompt.startswith(through_context), call.purpose
        if call.purpose in NSI_REASONING:  # the workflow's prompts share the history too
            through_history = native[: native.index("You are at Turn #")]
            assert prompt.startswith(through_history), call.purpose


def test_the_rating_puts_its_fixed_instructions_first_and_the_history_last(llm_server):
    _, calls = dsi_dialogue(llm_server)
    ratings = [c.messages[0]["content"] for c in calls if c.purpose == "rating"]
    assert len(ratings) >= 3
    first = ratings[0]
    # the instructions do not name the agents: every task's ratings share them
    instructions = first[: first.index(TASK.names[0])]
    assert "Steps 3 and 4" in instructions and "Otherwise score 1." in instructions
    assert first.index(omniscient_context(TASK)) < first.index("# The conversation so far:") < first.index("Turn #")
    # a later rating extends the earlier one's history: all of the earlier prompt up to its answer format is shared
    before_answer = first[: first.index("Answer with only a JSON object")].rstrip()
    assert all(later.startswith(before_answer) for later in ratings[1:])


def test_the_bench_cache_model_reuses_most_of_a_dialogue(llm_server):
    _, calls = dsi_dialogue(llm_server)
    model = CacheModel(capacity=25_000, counter=TokenCounter(None))
    for call in calls:
        model.serve(call.purpose, "\n".join(m["content"] for m in call.messages), call.params.get("n") or 1)
    tallies = model.report()["by_purpose"]
    prompt = sum(t["prompt_tokens"] for t in tallies.values())
    prefill = sum(t["prefill_tokens"] for t in tallies.values())
    # one dialogue alone, nothing evicted: what needs prefill is each chain's first prompt and every prompt's tail
    assert prefill == sum(t["prefill_tokens_unlimited"] for t in tallies.values())
    # this dialogue's one-line turns leave the fixed tails a large share: 0.35 as ordered, 0.52 before (ADR 0028)
    assert prefill < 0.4 * prompt, (prefill, prompt)
    style = tallies["nsi.style_transfer"]
    assert style["prefill_tokens"] < 0.5 * style["prompt_tokens"]  # its framing and context come from the agent's
