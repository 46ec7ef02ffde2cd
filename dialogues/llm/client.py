"""The LLM clients: OpenAIChatClient, chat completions against OpenAI-compatible servers (vLLM, SGLang, llama.cpp,
hosted APIs), and SidedLLM, which lets each side of a dialogue talk to its own model.

OpenAIChatClient spreads requests over its endpoints (least busy first) through one aiohttp session: keep-alive
connections, a cap per endpoint, a timeout per read and one per connect, proxies from the environment (ADR 0022).
It checks at start that the model is served, and asks for the samples of a temperature-0 request one at a time
(vLLM refuses n > 1 there). Transport errors (429, 5xx, timeouts, refused connections) are retried by tenacity a
bounded number of times, with backoff or after the server's Retry-After, then raise TransportFailure. Answers that
arrive but cannot be used are the engine's business (it re-asks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from yarl import URL

from dialogues.engine.llm import LLM, ChatRequest, ChatResponse, MalformedResponse, ModelNotServed, TransportFailure

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
KEEPALIVE_SECONDS = 4.0  # uvicorn (vLLM) closes idle connections after 5 s: ours go first


@dataclass
class _Endpoint:
    base_url: str
    chat_url: URL = field(init=False)  # parsed once, not for every request
    proxy: URL | None = field(init=False, default=None)
    proxy_auth: aiohttp.BasicAuth | None = field(init=False, default=None)
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.chat_url = URL(f"{_v1(self.base_url)}/chat/completions")
        # The proxy from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, its credentials in .netrc), looked up
        # once: aiohttp's trust_env looks it up, and .netrc, in a thread for every request (ADR 0022).
        with contextlib.suppress(LookupError):  # none for this URL
            self.proxy, self.proxy_auth = get_env_proxy_for_url(self.chat_url)


class _Retryable(Exception):
    """A try that failed in a way worth another: a retryable status, a timeout, a connection error."""

    def __init__(self, message: str, endpoint: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.retry_after = retry_after


class OpenAIChatClient:
    """Chat completions against one or more OpenAI-compatible servers, requests spread over them.

    Create it inside the event loop that will use it and keep it for the life of that loop: its aiohttp session
    (made at the first request) belongs to that loop.
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
        retry_after_max: float = 60.0,
        structured_output: bool = True,
        split_n_at_zero_temperature: bool = True,
    ) -> None:
        if not base_urls:
            raise ValueError("no LLM endpoint configured (OMEGA_LLM_BASE_URLS)")
        if not model:
            raise ValueError("no model configured (OMEGA_LLM_MODEL)")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("the LLM timeouts must be positive (OMEGA_LLM_TIMEOUT)")
        if transport_retries < 0 or retry_after_max < 0:
            raise ValueError(
                "the LLM retries and the Retry-After cap cannot be negative "
                "(OMEGA_LLM_TRANSPORT_RETRIES, OMEGA_LLM_RETRY_AFTER_MAX)"
            )
        self.model = model
        self.endpoints = [_Endpoint(url.rstrip("/")) for url in base_urls]
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._max_in_flight = max_in_flight_per_endpoint
        # a timeout per read (a server that goes quiet) and per connect, no total: a long answer that keeps
        # coming is not cut
        self._timeouts = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.transport_retries = transport_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.structured_output = structured_output
        self.split_n_at_zero_temperature = split_n_at_zero_temperature
        self._next = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        """One session for the client's life, made in the loop that uses it."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_in_flight * len(self.endpoints),
                limit_per_host=self._max_in_flight,
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeouts,
                cookie_jar=aiohttp.DummyCookieJar(),  # a chat request has no cookies to keep
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _pick(self) -> _Endpoint:
        # least busy, round-robin among equals
        self._next = (self._next + 1) % len(self.endpoints)
        ordered = self.endpoints[self._next :] + self.endpoints[: self._next]
        return min(ordered, key=lambda e: e.in_flight)

    async def check(self) -> None:
        for endpoint in self.endpoints:
            url = f"{_v1(endpoint.base_url)}/models"
            get = self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=15), proxy=endpoint.proxy, proxy_auth=endpoint.proxy_auth
            )
            try:
                async with get as answer:
                    status, text = answer.status, await answer.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransportFailure(
                    f"{url} cannot be reached: {type(exc).__name__}: {exc}", endpoint=endpoint.base_url
                ) from exc
            if status != 200:
                raise TransportFailure(f"{url} answered HTTP {status}", endpoint=endpoint.base_url)
            try:
                served = [m["id"] for m in json.loads(text)["data"]]
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
        payload = json.dumps(self._body(request)).encode()
        headers = {**self._headers, "X-Omega-Purpose": request.purpose}
        # Most requests need one try, so tenacity's loop (about 70 µs a request, ADR 0022) starts only
        # after the first failure, once its wait is over; it then makes the remaining tries.
        try:
            return await self._try(payload, headers, retries=0)
        except _Retryable as failure:
            if self.transport_retries == 0:
                raise _gave_up(failure, retries=0) from failure
            await asyncio.sleep(self._delay(failure, retry=1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.transport_retries),
            wait=lambda state: self._delay(state.outcome.exception(), retry=state.attempt_number + 1),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._try(payload, headers, retries=attempt.retry_state.attempt_number)
        except _Retryable as failure:
            raise _gave_up(failure, retries=self.transport_retries) from failure
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _try(self, payload: bytes, headers: dict[str, str], retries: int) -> ChatResponse:
        """One request: the answer parsed, or _Retryable, or TransportFailure for a status not worth retrying."""
        endpoint = self._pick()
        started = time.perf_counter()
        endpoint.in_flight += 1
        post = self.session.post(
            endpoint.chat_url, data=payload, headers=headers, proxy=endpoint.proxy, proxy_auth=endpoint.proxy_auth
        )
        try:
            async with post as answer:
                body = await answer.read()  # the whole answer in one piece
                status = answer.status
                retry_after = answer.headers.get("Retry-After") if status != 200 else None
        except TimeoutError as exc:  # aiohttp's socket and connect timeouts are TimeoutErrors
            raise _Retryable(f"timeout from {endpoint.base_url}: {type(exc).__name__}", endpoint.base_url) from exc
        except aiohttp.ClientError as exc:
            raise _Retryable(f"{type(exc).__name__} from {endpoint.base_url}: {exc}", endpoint.base_url) from exc
        finally:
            endpoint.in_flight -= 1
        latency = (time.perf_counter() - started) * 1000
        if status == 200:
            return self._parse(body, endpoint.base_url, latency, retries)
        error = f"HTTP {status} from {endpoint.base_url}: {body.decode(errors='replace')[:300]}"
        if status not in RETRYABLE_STATUS:
            raise TransportFailure(error, retries=retries, endpoint=endpoint.base_url)
        raise _Retryable(error, endpoint.base_url, retry_after_seconds(retry_after))

    def _delay(self, failure: BaseException | None, retry: int) -> float:
        """Before the given retry: the server's Retry-After when it sent one (capped), else exponential backoff
        (doubling from backoff_base, at most backoff_max), shortened at random by up to half."""
        if isinstance(failure, _Retryable) and failure.retry_after is not None:
            return min(failure.retry_after, self.retry_after_max)
        return min(self.backoff_max, self.backoff_base * 2 ** (retry - 1)) * (0.5 + random.random() / 2)

    def _parse(self, body: bytes, endpoint: str, latency: float, retries: int) -> ChatResponse:
        empty = ChatResponse(
            texts=[], latency_ms=latency, endpoint=endpoint, model=self.model, transport_retries=retries
        )
        try:
            data = json.loads(body)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            text = body.decode(errors="replace")[:200]
            raise MalformedResponse(f"the body is not JSON: {text!r}", response=empty) from exc
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


def _gave_up(failure: _Retryable, retries: int) -> TransportFailure:
    return TransportFailure(f"gave up after {retries + 1} tries: {failure}", retries=retries, endpoint=failure.endpoint)


def _v1(base_url: str) -> str:
    return base_url if base_url.endswith("/v1") else f"{base_url}/v1"


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds to wait: a number of seconds or an HTTP date (RFC 9110, 10.2.3); None when absent
    or unreadable (then the backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


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
