"""The LLM clients: OpenAIChatClient, chat completions against OpenAI-compatible servers (vLLM, SGLang, llama.cpp,
hosted APIs), and SidedLLM, which lets each side of a dialogue talk to its own model.

OpenAIChatClient spreads requests over its endpoints (least busy first, a semaphore each), over httpx with the
keep-alive transport of http_pool.py. It checks at start that the model is served, and asks for the samples of a
temperature-0 request one at a time (vLLM refuses n > 1 there). Transport errors (429, 5xx, timeouts, refused
connections) are retried with backoff a bounded number of times, then raise TransportFailure. Answers that arrive
but cannot be used are the engine's business (it re-asks).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from dialogues.engine.llm import LLM, ChatRequest, ChatResponse, MalformedResponse, ModelNotServed, TransportFailure
from dialogues.llm.http_pool import pooled_transport

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class _Endpoint:
    base_url: str
    semaphore: asyncio.Semaphore
    in_flight: int = 0

    @functools.cached_property
    def chat_url(self) -> httpx.URL:  # parsed once, not for every request
        return httpx.URL(f"{_v1(self.base_url)}/chat/completions")


class OpenAIChatClient:
    """Chat completions against one or more OpenAI-compatible servers, requests spread over them.

    Create it inside the event loop that will use it and keep it for the life of that loop: the pooled
    httpx.AsyncClient and the per-endpoint semaphores belong to that loop.
    """

    simulated = False

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str,
        *,
        api_key: str = "",
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        max_in_flight_per_endpoint: int = 256,
        transport_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        structured_output: bool = True,
        split_n_at_zero_temperature: bool = True,
    ) -> None:
        if not base_urls:
            raise ValueError("no LLM endpoint configured (OMEGA_LLM_BASE_URLS)")
        if not model:
            raise ValueError("no model configured (OMEGA_LLM_MODEL)")
        self.model = model
        self.endpoints = [
            _Endpoint(url.rstrip("/"), asyncio.Semaphore(max_in_flight_per_endpoint)) for url in base_urls
        ]
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(
            max_connections=max_in_flight_per_endpoint * len(base_urls),
            max_keepalive_connections=max_in_flight_per_endpoint * len(base_urls),
        )
        self._timeouts = httpx.Timeout(timeout, connect=connect_timeout)
        self._transport = pooled_transport(limits)
        self._http = httpx.AsyncClient(headers=self._headers, transport=self._transport, timeout=self._timeouts)
        self.transport_retries = transport_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.structured_output = structured_output
        self.split_n_at_zero_temperature = split_n_at_zero_temperature
        self._next = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    def _pick(self) -> _Endpoint:
        # least busy, round-robin among equals
        self._next = (self._next + 1) % len(self.endpoints)
        ordered = self.endpoints[self._next :] + self.endpoints[: self._next]
        return min(ordered, key=lambda e: e.in_flight)

    async def check(self) -> None:
        for endpoint in self.endpoints:
            url = f"{_v1(endpoint.base_url)}/models"
            try:
                answer = await self._http.get(url, timeout=15)
            except httpx.HTTPError as exc:
                raise TransportFailure(
                    f"{url} cannot be reached: {type(exc).__name__}: {exc}", endpoint=endpoint.base_url
                ) from exc
            if answer.status_code != 200:
                raise TransportFailure(f"{url} answered HTTP {answer.status_code}", endpoint=endpoint.base_url)
            try:
                served = [m["id"] for m in answer.json()["data"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise TransportFailure(f"{url} did not return a model list", endpoint=endpoint.base_url) from exc
            if self.model not in served:
                raise ModelNotServed(
                    f"{endpoint.base_url} does not serve the model {self.model!r}; it serves {served}. "
                    "Set OMEGA_LLM_MODEL to one of these (vLLM: the --served-model-name)."
                )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        # vLLM refuses n > 1 at temperature 0: ask for the samples one request at a time.
        if request.n > 1 and request.temperature == 0 and self.split_n_at_zero_temperature:
            singles = [
                ChatRequest(**{**request.__dict__, "n": 1, "seed": None if request.seed is None else request.seed + i})
                for i in range(request.n)
            ]
            parts = await asyncio.gather(*(self._chat_once(r) for r in singles))
            return ChatResponse(
                texts=[t for p in parts for t in p.texts],
                prompt_tokens=sum(p.prompt_tokens for p in parts),
                completion_tokens=sum(p.completion_tokens for p in parts),
                latency_ms=max(p.latency_ms for p in parts),
                endpoint=",".join(sorted({p.endpoint for p in parts})),
                model=parts[0].model,
                transport_retries=sum(p.transport_retries for p in parts),
                requests=len(parts),
            )
        return await self._chat_once(request)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            "n": request.n,
            # always explicit: vLLM otherwise applies the model's generation_config defaults
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.json_schema is not None and self.structured_output:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.purpose.replace(".", "_"), "schema": request.json_schema},
            }
        return body

    async def _chat_once(self, request: ChatRequest) -> ChatResponse:
        body = self._body(request)
        retries = 0
        last_error = ""
        while True:
            endpoint = self._pick()
            url = endpoint.chat_url
            started = time.perf_counter()
            endpoint.in_flight += 1
            try:
                async with endpoint.semaphore:
                    answer = await self._post(url, body, request.purpose)
                status = answer.status_code
                if status != 200:
                    last_error = f"HTTP {status} from {endpoint.base_url}: {answer.text[:300]}"
            except httpx.TimeoutException as exc:
                status, last_error = None, f"timeout from {endpoint.base_url}: {type(exc).__name__}"
            except httpx.TransportError as exc:
                status, last_error = None, f"{type(exc).__name__} from {endpoint.base_url}: {exc}"
            finally:
                endpoint.in_flight -= 1
            latency = (time.perf_counter() - started) * 1000
            if status == 200:
                return self._parse(answer, endpoint.base_url, latency, retries)
            if status is not None and status not in RETRYABLE_STATUS:
                raise TransportFailure(last_error, retries=retries, endpoint=endpoint.base_url)
            if retries >= self.transport_retries:
                raise TransportFailure(
                    f"gave up after {retries + 1} tries: {last_error}", retries=retries, endpoint=endpoint.base_url
                )
            retries += 1
            delay = min(self.backoff_max, self.backoff_base * 2 ** (retries - 1))
            await asyncio.sleep(delay * (0.5 + random.random() / 2))

    async def _post(self, url: httpx.URL, body: dict, purpose: str) -> httpx.Response:
        """POST straight to the pooled transport: a chat request needs no cookies, redirects or auth flows, and
        the client's layers for them cost a worker about a tenth of its CPU per request (bench/)."""
        request = httpx.Request(
            "POST",
            url,
            json=body,
            headers={**self._headers, "X-Omega-Purpose": purpose},
            extensions={"timeout": self._timeouts.as_dict()},
        )
        answer = await self._transport.handle_async_request(request)
        try:
            await answer.aread()
        finally:
            await answer.aclose()
        return answer

    def _parse(self, answer: httpx.Response, endpoint: str, latency: float, retries: int) -> ChatResponse:
        empty = ChatResponse(
            texts=[], latency_ms=latency, endpoint=endpoint, model=self.model, transport_retries=retries
        )
        try:
            data = answer.json()
        except (ValueError, json.JSONDecodeError) as exc:
            raise MalformedResponse(f"the body is not JSON: {answer.text[:200]!r}", response=empty) from exc
        if not isinstance(data, dict):
            raise MalformedResponse("the body is not a JSON object", response=empty)
        usage = data.get("usage") or {}
        response = ChatResponse(
            texts=[],
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency,
            endpoint=endpoint,
            model=str(data.get("model") or self.model),
            transport_retries=retries,
        )
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MalformedResponse("the answer has no choices", response=response)
        for choice in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            response.texts.append(content if isinstance(content, str) else "")
        return response


def _v1(base_url: str) -> str:
    return base_url if base_url.endswith("/v1") else f"{base_url}/v1"


class SidedLLM:
    """Each side of a dialogue played by its own model (an evaluation run: the agent under test against a
    reference model). Agent 1 speaks on even turns, agent 2 on odd ones; a request goes to the model of the side
    whose turn it is (the engine puts the turn in the request's meta)."""

    def __init__(self, first: LLM, second: LLM) -> None:
        self.sides = (first, second)
        self.simulated = first.simulated and second.simulated
        self.model = f"{first.model} / {second.model}"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.sides[int(request.meta.get("turn", 0)) % 2].chat(request)

    async def check(self) -> None:
        for llm in self.sides:
            await llm.check()
