"""The OpenAI-compatible client against a real HTTP server: model check, request shape, n, endpoints."""

from __future__ import annotations

import asyncio

import pytest

from dialogues.engine.llm import ChatRequest, ModelNotServed, TransportFailure
from dialogues.llm.client import OpenAIChatClient
from tests.support.llm_server import ScriptedLLMServer


def call(client_args, coro_factory):
    async def main():
        client = OpenAIChatClient(**client_args)
        try:
            return await coro_factory(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_check_refuses_a_model_that_is_not_served():
    with ScriptedLLMServer("Qwen2.5-72B-Instruct") as server, pytest.raises(ModelNotServed) as refused:
        call({"base_urls": [server.base_url], "model": "Qwen25-72B-Instruct"}, lambda c: c.check())
    assert "does not serve the model 'Qwen25-72B-Instruct'" in str(refused.value)
    assert "['Qwen2.5-72B-Instruct']" in str(refused.value)


def test_check_passes_when_served_and_fails_when_unreachable():
    with ScriptedLLMServer() as server:
        call({"base_urls": [server.base_url], "model": "test-model"}, lambda c: c.check())
        url = server.base_url
    with pytest.raises(TransportFailure, match="cannot be reached"):
        call({"base_urls": [url], "model": "test-model"}, lambda c: c.check())


def test_sampling_parameters_are_always_explicit():
    with ScriptedLLMServer() as server:
        server.script("action.native", "ok")
        request = ChatRequest(
            purpose="action.native",
            messages=({"role": "user", "content": "hi"},),
            temperature=1.0,
            top_p=0.95,
            max_tokens=8192,
            seed=123,
            json_schema={"type": "object"},
        )
        response = call(
            {"base_urls": [server.base_url], "model": "test-model", "api_key": "sk-test"}, lambda c: c.chat(request)
        )
    body = server.requests[-1]["body"]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"], body["n"]) == (
        1.0,
        0.95,
        8192,
        123,
        1,
    )
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert response.texts == ["ok"] and response.prompt_tokens >= 0


def test_n_at_temperature_zero_is_split_into_separate_requests():
    with ScriptedLLMServer() as server:
        server.script("judge", "a", "b", "c")
        request = ChatRequest(
            purpose="judge", messages=({"role": "user", "content": "x"},), n=3, temperature=0.0, seed=10
        )
        response = call({"base_urls": [server.base_url], "model": "test-model"}, lambda c: c.chat(request))
    assert sorted(response.texts) == ["a", "b", "c"] and response.requests == 3
    assert sorted(r["body"]["seed"] for r in server.requests) == [10, 11, 12]
    assert all(r["body"]["n"] == 1 for r in server.requests)


def test_requests_are_spread_over_endpoints():
    with ScriptedLLMServer() as one, ScriptedLLMServer() as two:
        for server in (one, two):
            server.responder = lambda purpose, body: "fine"

        async def many(client):
            request = ChatRequest(purpose="p", messages=({"role": "user", "content": "x"},))
            return await asyncio.gather(*(client.chat(request) for _ in range(20)))

        call({"base_urls": [one.base_url, two.base_url], "model": "test-model"}, many)
    assert len(one.requests) >= 5 and len(two.requests) >= 5
    assert len(one.requests) + len(two.requests) == 20


def test_structured_output_can_be_switched_off():
    with ScriptedLLMServer() as server:
        server.script("p", "x")
        request = ChatRequest(purpose="p", messages=({"role": "user", "content": "x"},), json_schema={"type": "object"})
        call(
            {"base_urls": [server.base_url], "model": "test-model", "structured_output": False},
            lambda c: c.chat(request),
        )
    assert "response_format" not in server.requests[-1]["body"]
