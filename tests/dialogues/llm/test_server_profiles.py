"""Server profiles (dialogues/llm/profile.py) and adapting to them: against the test server behaving like the servers
researchers use (n ignored or refused, seed refused, json_schema refused but json_object taken, a 4,096-token
context, answers cut at max_tokens), DSI dialogues with the paper's defaults finish and every rating asked for 5
samples and got 5 back. A re-ask after an unusable answer sends a different request, also at temperature 0."""

from __future__ import annotations

import asyncio
import json

import pytest

from dialogues.engine.config import RunConfig, Sampling
from dialogues.engine.llm import ChatRequest, PromptTooLong
from dialogues.llm import profile as profiles
from dialogues.llm.client import OpenAIChatClient
from dialogues.llm.profile import Forced
from evaluation.judges import JudgeConfig, judge, parse_relevance
from tests.dialogues.engine.conftest import TASK, run_dialogue
from tests.support import llm_answers as a
from tests.support.llm_server import ScriptedLLMServer

LLAMA_SERVER = {"n_max": 2, "context": 4096}  # llama.cpp's llama-server with two slots
LLAMA_CPP_PYTHON = {"n_mode": "ignore", "structured": "json_object"}
KINDS = {
    "vllm-like": {},
    "ignores n": {"n_mode": "ignore"},
    "refuses n > 1": {"n_mode": "refuse"},
    "takes n up to 2": {"n_max": 2},
    "refuses seed": {"refuse_seed": True},
    "4,096-token context": {"context": 4096},
    "json_object with schema only": {"structured": "json_object"},
    "no structured output": {"structured": "none"},
    "cuts at max_tokens": {"cut_at_max_tokens": True},
    "llama-server": LLAMA_SERVER,
    "llama-cpp-python": LLAMA_CPP_PYTHON,
    "all of them": {"n_mode": "ignore", "refuse_seed": True, "structured": "json_object", "context": 4096},
}


def probe(**behaviour) -> profiles.ServerProfile:
    with ScriptedLLMServer(**behaviour) as server:

        async def main():
            client = OpenAIChatClient([server.base_url], server.model)
            try:
                return (await client.profiles())[0]
            finally:
                await client.aclose()

        return asyncio.run(main())


def test_the_probe_finds_what_each_server_can_do():
    vllm = probe()
    assert (vllm.n, vllm.seed, vllm.structured, vllm.structured_enforced) == ("native", True, "json_schema", True)
    assert vllm.context_length is None and "OMEGA_LLM_CONTEXT_LENGTH" in " ".join(vllm.notes)
    llama = probe(**LLAMA_SERVER)
    assert (llama.n, llama.n_max) == ("native", 2) and "1 <= value <= 2" in " ".join(llama.notes)
    assert "up to 2 samples per request" in llama.summary()
    assert probe(n_mode="refuse").n == "refused"
    assert (llama.context_length, llama.context_source, llama.tokenize) == (
        4096,
        "/props n_ctx (llama.cpp)",
        "llama.cpp",
    )
    python = probe(**LLAMA_CPP_PYTHON)
    assert python.n == "fewer" and (python.structured, python.structured_enforced) == ("json_object", True)
    assert "json_schema refused (HTTP 500" in " ".join(python.notes)
    assert probe(refuse_seed=True).seed is False
    assert probe(structured="none").structured == "off"
    assert "n ignored" in python.summary() and "json_object (enforced)" in python.summary()
    assert probe().probe_requests <= 8  # cheap: a few tiny requests


def test_a_forced_capability_is_not_probed_and_is_recorded():
    with ScriptedLLMServer(n_mode="refuse") as server:

        async def main():
            client = OpenAIChatClient(
                [server.base_url], server.model, forced=Forced(n="separate", seed=False, context_length=2048)
            )
            try:
                return (await client.profiles())[0]
            finally:
                await client.aclose()

        found = asyncio.run(main())
        purposes = {p["purpose"] for p in server.probes}
    assert (found.n, found.seed, found.context_length) == ("refused", False, 2048)
    assert found.forced == ["n", "seed", "context_length"] and found.context_source.startswith("setting")
    assert "probe.n" not in purposes and "probe.seed" not in purposes


def test_a_wrong_forced_setting_is_refused_with_its_name():
    with pytest.raises(ValueError, match="OMEGA_LLM_STRUCTURED_OUTPUT"):
        Forced(structured="yaml")


def deadlock_then_agreement(turn: int, n: int) -> list[str]:
    if turn == 5:
        return a.uniform(7, 7, n)
    return a.uniform(8, 8, n, end=turn >= 15)


@pytest.mark.parametrize("behaviour", KINDS.values(), ids=KINDS.keys())
def test_dsi_with_the_paper_defaults_finishes_and_every_rating_gets_its_five_samples(behaviour):
    config = RunConfig()  # the paper's defaults: 5 judge samples, max_tokens 8192, temperature 1
    assert (config.judge_samples, config.sampling.max_tokens) == (5, 8192)
    with ScriptedLLMServer(**behaviour) as server:
        server.responder = a.responder(deadlock_then_agreement)
        state, _, calls = run_dialogue(server, config)
        sent = [r["body"] for r in server.requests if r["purpose"]]
        refused = [r for r in server.requests if r.get("refused")]
    assert [t.index for t in state.turns if t.rating] == [5, 14, 15]  # the negotiation workflow ran
    for turn in state.turns:
        if turn.rating:
            assert (turn.rating["requested"], turn.rating["returned"], turn.rating["valid"]) == (5, 5, 5)
    assert not refused, refused  # nothing the probe found was sent anyway
    if behaviour.get("refuse_seed"):
        assert all("seed" not in body for body in sent)
    if behaviour.get("n_mode") in ("ignore", "refuse"):
        assert all(body["n"] == 1 for body in sent)
    if behaviour.get("n_max"):
        assert {body["n"] for body in sent if body.get("n", 1) > 1} == {2}  # 5 samples as 2 + 2 + 1
    if behaviour.get("structured") == "json_object":
        assert {b["response_format"]["type"] for b in sent if "response_format" in b} == {"json_object"}
    if behaviour.get("context"):
        assert all(body["max_tokens"] < 4096 for body in sent)
        assert all(c.params.get("sent", {}).get("max_tokens", 8192) < 4096 for c in calls)
    # every call whose answer has a known shape sent its schema (the negotiation calls included)
    shaped = {c.purpose for c in calls if c.params["structured"]}
    assert {"nsi.own_utility", "nsi.other_utility", "nsi.proposal_draft", "nsi.update", "rating"} <= shaped


def test_a_server_that_returns_fewer_choices_than_asked_is_asked_for_the_rest():
    # forced to send n: the server answers n = 5 with one choice; the other four are asked for one by one
    with ScriptedLLMServer(n_mode="ignore") as server:
        server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
        state, _, calls = run_dialogue(server, RunConfig(), forced=Forced(n="native"))
        ratings = [r for r in server.requests if r["purpose"] == "rating"]
    assert [r["body"]["n"] for r in ratings] == [5, 1, 1, 1, 1]
    rating = state.turns[5].rating
    assert (rating["requested"], rating["returned"], rating["valid"]) == (5, 5, 5)
    call = next(c for c in calls if c.purpose == "rating")
    assert call.requests == 5 and any("returned 1 of 5 choices" in note for note in call.params["adapted"])


def test_a_refusal_mid_run_is_learnt_and_the_request_goes_again_without_the_parameter():
    with ScriptedLLMServer(refuse_seed=True) as server:
        server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
        state, _, calls = run_dialogue(server, RunConfig(judge_samples=3), forced=Forced(seed=True))
        refused = [r for r in server.requests if r.get("refused")]
    assert len(refused) == 1 and "seed" in refused[0]["body"]  # once: afterwards the profile knows
    assert state.turns[-1].action.action_type.value == "leave"
    assert any("seed left out" in note for c in calls for note in c.params.get("adapted", []))


def test_an_answer_cut_at_max_tokens_is_reported_as_such_and_asked_again_differently():
    looping = "I think " * 20_000  # a loop that runs into the limit
    with ScriptedLLMServer(context=4096) as server:
        server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
        server.script("action.native", looping)
        state, _, calls = run_dialogue(server, RunConfig(judge_samples=3))
        first, second = [r["body"] for r in server.requests if r["purpose"] == "action.native"][:2]
    cut = calls[0]
    assert cut.finish_reasons == ["length"]
    assert cut.error.startswith("unusable answer: cut off at max_tokens (") and "no JSON object" not in cut.error
    assert first["messages"] != second["messages"]  # the re-ask quotes the answer and says what went wrong
    assert second["messages"][1]["role"] == "assistant" and "cut off at max_tokens" in second["messages"][2]["content"]
    assert state.turns[0].action.argument  # the re-ask was usable


def test_a_prompt_that_does_not_fit_the_context_fails_the_step_with_the_reason():
    with ScriptedLLMServer(context=64) as server:
        server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n))

        async def main():
            client = OpenAIChatClient([server.base_url], server.model)
            try:
                request = ChatRequest(purpose="p", messages=({"role": "user", "content": "word " * 400},))
                return await client.chat(request)
            finally:
                await client.aclose()

        with pytest.raises(PromptTooLong, match=r"the prompt alone \(.* tokens, counted by the server\) does not fit"):
            asyncio.run(main())
        assert not [r for r in server.requests if r["purpose"] == "p"]  # never sent


def test_a_reask_at_temperature_zero_sends_a_different_request():
    # the step rating at temperature 0: the first answer is unusable, the re-ask must not be the same request
    with ScriptedLLMServer() as server:
        server.responder = a.responder(lambda turn, n: a.uniform(9, 9, n, end=True))
        server.script("rating", "not json at all")
        config = RunConfig(judge_samples=1, judge_min_valid=1, judge_temperature=0.0)
        run_dialogue(server, config)
        first, second = [r["body"] for r in server.requests if r["purpose"] == "rating"][:2]
    assert first["temperature"] == second["temperature"] == 0.0
    assert first != second
    assert second["messages"][:1] == first["messages"] and second["messages"][1]["content"] == "not json at all"
    assert "no JSON object" in second["messages"][2]["content"]


def test_the_evaluation_judges_reask_differently_too():
    with ScriptedLLMServer() as server:
        server.script("srel", "garbage", json.dumps({"score_justification": "fine", "score": 0.5}))

        async def main():
            client = OpenAIChatClient([server.base_url], server.model)
            try:
                return await judge(
                    client,
                    purpose="srel",
                    prompt="Rate the action.",
                    samples=1,
                    parse=parse_relevance,
                    schema={"type": "object"},
                    config=JudgeConfig(),
                )
            finally:
                await client.aclose()

        result = asyncio.run(main())
        first, second = [r["body"] for r in server.requests if r["purpose"] == "srel"]
    assert result.ok and result.samples == [{"score": 0.5, "justification": "fine"}] and result.returned == 2
    assert first["temperature"] == 0.0 and first["messages"] != second["messages"]


def test_the_test_task_is_small_enough_for_the_small_context():
    # the assertions on the 4,096-token server above are about capping, not about prompts that cannot fit
    assert len(TASK.scenario) < 200
    assert Sampling().max_tokens == 8192
