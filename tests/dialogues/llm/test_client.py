"""The OpenAI-compatible client against a real HTTP server: model check, request shape, n, endpoints, retries and
Retry-After, timeouts, keep-alive and the cap per endpoint, proxies from the environment."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from dialogues.engine.llm import ChatRequest, ModelNotServed, TransportFailure
from dialogues.llm.client import OpenAIChatClient
from dialogues.llm.profile import Forced
from tests.support.llm_server import Reply, ScriptedLLMServer


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


def test_cached_tokens_are_read_from_the_usage_and_summed_over_split_requests():
    prompt = "The same long beginning of every prompt. " * 10
    with ScriptedLLMServer(report_cached=True) as server:
        server.responder = lambda purpose, body: "fine"
        request = ChatRequest(purpose="judge", messages=({"role": "user", "content": prompt},), n=3, temperature=0.0)

        async def twice(client):
            first = await client.chat(ChatRequest(purpose="p", messages=({"role": "user", "content": prompt + "a"},)))
            return first, await client.chat(request)

        first, split = call({"base_urls": [server.base_url], "model": "test-model"}, twice)
    assert first.cached_tokens == 0  # nothing before it
    # three requests of n = 1 (temperature 0), each sharing the whole prompt with an earlier one: their sum
    assert split.requests == 3 and split.cached_tokens == 3 * (len(prompt) // 4)
    with ScriptedLLMServer() as server:  # a server that does not report them: None, not 0
        server.script("p", "x")
        plain = call(
            {"base_urls": [server.base_url], "model": "test-model"},
            lambda c: c.chat(ChatRequest(purpose="p", messages=({"role": "user", "content": "x"},))),
        )
    assert plain.cached_tokens is None


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
            {"base_urls": [server.base_url], "model": "test-model", "forced": Forced(structured="off")},
            lambda c: c.chat(request),
        )
    assert "response_format" not in server.requests[-1]["body"]


REQUEST = ChatRequest(purpose="p", messages=({"role": "user", "content": "x"},))


def gap(server: ScriptedLLMServer) -> float:
    """Seconds between the server's first and second chat request."""
    first, second = (r["at"] for r in server.requests if r["purpose"])
    return second - first


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_waited_before_the_next_try(status):
    with ScriptedLLMServer() as server:
        server.script("p", Reply(status=status, headers={"Retry-After": "1"}), "fine")
        response = call(
            {"base_urls": [server.base_url], "model": "test-model", "backoff_base": 0.01}, lambda c: c.chat(REQUEST)
        )
    assert response.texts == ["fine"] and response.transport_retries == 1
    assert gap(server) >= 1.0  # the backoff alone would have waited 0.01 s at most


def test_retry_after_as_a_date_is_waited_too():
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: between 1 and 2 s from now
    with ScriptedLLMServer() as server:
        server.script("p", Reply(status=429, headers={"Retry-After": when}), "fine")
        call({"base_urls": [server.base_url], "model": "test-model", "backoff_base": 0.01}, lambda c: c.chat(REQUEST))
    assert gap(server) >= 0.9


def test_retry_after_is_capped_by_the_setting():
    with ScriptedLLMServer() as server:
        server.script("p", Reply(status=503, headers={"Retry-After": "3600"}), "fine")
        response = call(
            {"base_urls": [server.base_url], "model": "test-model", "backoff_base": 0.01, "retry_after_max": 0.5},
            lambda c: c.chat(REQUEST),
        )
    assert response.texts == ["fine"]
    assert 0.5 <= gap(server) < 60


def test_retry_after_keeps_the_bounded_count_and_the_message():
    with ScriptedLLMServer() as server:
        server.responder = lambda purpose, body: Reply(status=429, headers={"Retry-After": "0"})
        with pytest.raises(TransportFailure) as failed:
            call(
                {"base_urls": [server.base_url], "model": "test-model", "transport_retries": 2},
                lambda c: c.chat(REQUEST),
            )
    assert str(failed.value).startswith(f"gave up after 3 tries: HTTP 429 from {server.base_url}: ")
    assert failed.value.retries == 2 and len(server.purposes()) == 3


def test_an_answer_that_keeps_coming_is_not_cut_by_the_read_timeout():
    # four pieces 0.3 s apart: 0.9 s in all, over a timeout of 0.5 s that bounds each read, not the request
    with ScriptedLLMServer() as server:
        server.script("p", Reply(texts=["slow but steady"], trickle=0.3))
        response = call(
            {"base_urls": [server.base_url], "model": "test-model", "timeout": 0.5, "transport_retries": 0},
            lambda c: c.chat(REQUEST),
        )
    assert response.texts == ["slow but steady"]


def test_a_silent_server_is_a_timeout():
    with ScriptedLLMServer() as server:
        server.responder = lambda purpose, body: Reply(texts=["late"], delay=1.0)
        with pytest.raises(TransportFailure, match=r"gave up after 1 tries: timeout from http://127\.0\.0\.1:\d+: "):
            call(
                {"base_urls": [server.base_url], "model": "test-model", "timeout": 0.2, "transport_retries": 0},
                lambda c: c.chat(REQUEST),
            )


def test_connections_are_kept_alive_and_capped_per_endpoint():
    with ScriptedLLMServer() as server:
        server.responder = lambda purpose, body: Reply(texts=["ok"], delay=0.05)

        async def sequential_then_parallel(client):
            for _ in range(5):
                await client.chat(REQUEST)
            return await asyncio.gather(*(client.chat(REQUEST) for _ in range(12)))

        call(
            {"base_urls": [server.base_url], "model": "test-model", "max_in_flight_per_endpoint": 3},
            sequential_then_parallel,
        )
    ports = [r["client_port"] for r in server.requests if r["purpose"]]
    assert len(set(ports[:5])) == 1  # one connection, reused
    assert server.max_in_flight == 3 and len(set(ports)) <= 3


def test_a_refused_connection_is_retried_then_fails_with_its_reason():
    with ScriptedLLMServer() as server:
        url = server.base_url
    with pytest.raises(TransportFailure) as failed:
        call({"base_urls": [url], "model": "test-model", "transport_retries": 1, "backoff_base": 0.01},
             lambda c: c.chat(REQUEST))  # fmt: skip
    assert str(failed.value).startswith(
        f"gave up after 2 tries: {url}/v1/models cannot be reached: ClientConnectorError"
    )


def test_the_proxy_comes_from_the_environment(monkeypatch):
    # the test server plays the proxy: the request reaches it for a host that does not exist
    with ScriptedLLMServer() as proxy:
        proxy.script("p", "through the proxy")
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        response = call({"base_urls": ["http://llm.invalid:8000"], "model": "test-model"}, lambda c: c.chat(REQUEST))
    assert response.texts == ["through the proxy"]
    assert proxy.requests[-1]["path"] == "http://llm.invalid:8000/v1/chat/completions"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("timeout", 0, "timeouts must be positive"),
        ("transport_retries", -1, "cannot be negative"),
        ("retry_after_max", -5, "cannot be negative"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(option, value, message):
    with pytest.raises(ValueError, match=message):
        OpenAIChatClient(["http://127.0.0.1:1"], "m", **{option: value})
