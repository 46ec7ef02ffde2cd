"""OpenAIChatClient: chat completions against OpenAI-compatible servers (vLLM, SGLang, llama.cpp, llama-cpp-python,
Ollama, hosted APIs).

OpenAIChatClient spreads requests over its endpoints (least busy first) through one aiohttp session: keep-alive
connections, a cap per endpoint, a timeout per read and one per connect, proxies from the environment (ADR 0022).
Before its first request it learns what each endpoint can do (profile.py: n, seed, the structured-output dialect,
the context) and writes every request for that server: samples the server will not return in one request are asked
for separately (concurrently), a refused seed is left out, the JSON schema goes in the dialect the server takes,
max_tokens is capped to the context the prompt leaves. A refusal that names a parameter teaches the profile and the
request goes again without it, never blindly. Transport errors (429, 5xx, timeouts, refused connections) are
retried by tenacity a bounded number of times, with backoff or after the server's Retry-After, then raise
TransportFailure. Answers that arrive but cannot be used are the engine's business (it re-asks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from yarl import URL

from dialogues.engine.llm import ChatRequest, ChatResponse, MalformedResponse, PromptTooLong, TransportFailure
from dialogues.llm import profile as profiles
from dialogues.llm.profile import N_FEWER, N_NATIVE, N_REFUSED, NO_STRUCTURE, Forced, ServerProfile

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
KEEPALIVE_SECONDS = 4.0  # uvicorn (vLLM) closes idle connections after 5 s: ours go first


@dataclass
class _Endpoint:
    base_url: str
    chat_url: URL = field(init=False)  # parsed once, not for every request
    proxy: URL | None = field(init=False, default=None)
    proxy_auth: aiohttp.BasicAuth | None = field(init=False, default=None)
    in_flight: int = 0
    profile: ServerProfile | None = None

    def __post_init__(self) -> None:
        self.chat_url = URL(f"{profiles.v1_url(self.base_url)}/chat/completions")
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


class _Refused(Exception):
    """The server answered with an error that names a parameter we sent (profile.refused_parameter)."""

    def __init__(self, parameter: str, message: str, endpoint: _Endpoint) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.endpoint = endpoint


MAX_ADAPTATIONS = 4  # seed, structured output (three dialects), n, context: each refusal takes one away


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
        forced: Forced | None = None,
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
        self.forced = forced or Forced()
        self.split_n_at_zero_temperature = split_n_at_zero_temperature
        self._probing: asyncio.Lock | None = None
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

    async def profiles(self) -> list[ServerProfile]:
        """What every endpoint can do for the model: probed once per process (profile.py), then kept. Raises
        ModelNotServed or TransportFailure when an endpoint cannot serve the model."""
        if all(e.profile is not None for e in self.endpoints):
            return [e.profile for e in self.endpoints]  # type: ignore[misc]
        if self._probing is None:
            self._probing = asyncio.Lock()
        async with self._probing:
            for endpoint in self.endpoints:
                if endpoint.profile is not None:
                    continue
                known = profiles.cached(endpoint.base_url, self.model, self.forced)
                if known is None:
                    known = await self._probe(endpoint)
                    profiles.remember(known, self.forced)
                endpoint.profile = known
        return [e.profile for e in self.endpoints]  # type: ignore[misc]

    async def _probe(self, endpoint: _Endpoint) -> ServerProfile:
        """The endpoint's profile; a server that cannot be reached is tried again like any request (bounded)."""
        for retry in range(self.transport_retries + 1):
            try:
                return await profiles.probe(
                    self.session,
                    endpoint.base_url,
                    self.model,
                    headers=self._headers,
                    forced=self.forced,
                    timeout=self._timeouts.sock_read or 120.0,
                )
            except TransportFailure as failure:
                if retry == self.transport_retries:
                    raise TransportFailure(
                        f"gave up after {retry + 1} tries: {failure}", retries=retry, endpoint=endpoint.base_url
                    ) from failure
                await asyncio.sleep(self._delay(failure, retry=retry + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def check(self) -> None:
        """Every endpoint is there now and serves the model (its profile: probed once, then kept)."""
        for endpoint in self.endpoints:
            await profiles.served_models(self.session, endpoint.base_url, self.model, headers=self._headers)
        await self.profiles()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        await self.profiles()
        size, why = self._batch(request)
        if request.n <= size:
            return await self._samples(request)
        starts = range(0, request.n, size)
        parts = await asyncio.gather(
            *(self._samples(_part(request, start, min(size, request.n - start))) for start in starts)
        )
        each = "one" if size == 1 else f"at most {size}"
        return _merged(list(parts), adapted=[f"n = {request.n} as {len(starts)} requests of {each}: {why}"])

    def _batch(self, request: ChatRequest) -> tuple[int, str]:
        """How many samples one request may ask for here, and why no more."""
        if request.temperature == 0 and self.split_n_at_zero_temperature:
            return 1, "n > 1 at temperature 0"  # vLLM refuses n > 1 at temperature 0
        size, why = request.n, ""
        for profile in (e.profile for e in self.endpoints if e.profile is not None):
            limit = (profile.n_max or request.n) if profile.n == N_NATIVE else 1
            if limit < size:
                size = limit
                why = {N_REFUSED: "the server refuses n > 1", N_FEWER: "the server ignores n"}.get(
                    profile.n, f"the server takes at most n = {limit}"
                )
        return max(1, size), why

    async def _samples(self, request: ChatRequest) -> ChatResponse:
        """One request for request.n samples. Where the server refuses that n, or returns fewer choices, the profile
        learns it and the missing samples are asked for again as it now allows, so that a server's limits never
        reduce the sample count (bounded: each lesson lowers what one request may ask for)."""
        try:
            response = await self._chat_once(request)
        except _Refused as refused:
            self._learn(refused.endpoint, "n", str(refused))
            return await self.chat(request)
        missing = request.n - len(response.texts)
        if request.n > 1 and missing > 0:
            for endpoint in self.endpoints:
                answered = endpoint.base_url in response.endpoint.split(",")
                if answered and endpoint.profile is not None and endpoint.profile.n == N_NATIVE:
                    self._learn(endpoint, "n", f"n = {request.n} returned {len(response.texts)} choice(s)")
            rest = await self.chat(_part(request, len(response.texts), missing))
            notes = [f"the server returned {len(response.texts)} of {request.n} choices: the rest asked for again"]
            return _merged([response, rest], adapted=[*notes, *response.adapted, *rest.adapted])
        return response

    def _learn(self, endpoint: _Endpoint, parameter: str, what: str) -> None:
        """A request taught the profile something the probe did not (the profile is the process's, shared)."""
        profile = endpoint.profile
        if profile is None:
            return
        if parameter == "seed":
            profile.seed = False
        elif parameter == "structured":
            profile.structured = profiles.weaker_dialect(profile.structured)
            profile.structured_enforced = None
        elif parameter == "n" and "returned" in what:
            profile.n, profile.n_max = N_FEWER, None
        elif parameter == "n":
            profile.n, profile.n_max = profiles.n_from_refusal(what)
        profile.learned.append(f"{parameter}: {what}"[:300])

    async def _chat_once(self, request: ChatRequest) -> ChatResponse:
        """One request (n as asked), adapted to the server; a refusal naming a parameter we sent is learnt and the
        request goes again without it (each parameter once: bounded)."""
        for _ in range(MAX_ADAPTATIONS + 1):
            try:
                return await self._send(request)
            except _Refused as refused:
                if refused.parameter == "n":
                    raise
                if refused.parameter == "context":
                    self._learn_context(refused)
                    continue
                self._learn(refused.endpoint, refused.parameter, f"refused ({refused})")
        raise TransportFailure(f"the server kept refusing the request's parameters: {request.purpose}")

    def _learn_context(self, refused: _Refused) -> None:
        profile = refused.endpoint.profile
        size = profiles.context_in_error(str(refused))
        if profile is None or size is None or size == profile.context_length:
            raise PromptTooLong(f"the prompt does not fit the server's context: {refused}")
        profile.context_length, profile.context_source = size, "the server's error message"
        profile.learned.append(f"context: {size} tokens (from the server's error)")

    async def _send(self, request: ChatRequest) -> ChatResponse:
        # Most requests need one try, so tenacity's loop (about 70 µs a request, ADR 0022) starts only
        # after the first failure, once its wait is over; it then makes the remaining tries.
        try:
            return await self._try(request, retries=0)
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
                    return await self._try(request, retries=attempt.retry_state.attempt_number)
        except _Retryable as failure:
            raise _gave_up(failure, retries=self.transport_retries) from failure
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _body(self, request: ChatRequest, endpoint: _Endpoint) -> tuple[dict[str, Any], list[str]]:
        """The request as this endpoint's server takes it, and what was changed for it."""
        profile = endpoint.profile or ServerProfile(endpoint.base_url, self.model)
        adapted: list[str] = []
        max_tokens = await self._max_tokens(request, endpoint, adapted)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            "n": request.n,
            # always explicit: vLLM otherwise applies the model's generation_config defaults
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": max_tokens,
        }
        if request.seed is not None:
            if profile.seed:
                body["seed"] = request.seed
            else:
                adapted.append("seed left out: the server refuses it (not seed-reproducible)")
        if request.json_schema is not None:
            if profile.structured == NO_STRUCTURE:
                adapted.append("no structured output on this server: the prompt's JSON instructions only")
            else:
                name = request.purpose.replace(".", "_")
                body.update(profiles.response_format_fields(profile.structured, request.json_schema, name))
                if profile.structured != profiles.JSON_SCHEMA:
                    adapted.append(f"structured output as {profile.structured}")
        return body, adapted

    async def _max_tokens(self, request: ChatRequest, endpoint: _Endpoint, adapted: list[str]) -> int:
        """The request's max_tokens, capped to the context the prompt leaves (when the server's context is known).
        Raises PromptTooLong when the prompt alone does not fit."""
        profile = endpoint.profile
        context = profile.context_length if profile is not None else None
        if not context:
            return request.max_tokens
        messages = list(request.messages)
        size = sum(len(m.get("content", "").encode()) for m in messages)
        # a token is at least one byte of text: below this bound the answer surely fits, no need to count
        if size + profiles.TEMPLATE_TOKENS * (1 + len(messages)) + request.max_tokens <= context:
            return request.max_tokens
        counted = await profiles.count_prompt_tokens(
            self.session, profile, messages, self._headers, endpoint.proxy, endpoint.proxy_auth
        )
        how = "counted by the server"
        if counted is None:  # no way to count here: about three bytes a token for English text
            counted = math.ceil(size / 3) + profiles.TEMPLATE_TOKENS * (1 + len(messages))
            how = "estimated"
        room = context - counted
        if room < 1:
            raise PromptTooLong(
                f"the prompt alone ({counted:,} tokens, {how}) does not fit the context of {context:,} tokens "
                f"({profile.context_source}) of {endpoint.base_url}"
            )
        if room >= request.max_tokens:
            return request.max_tokens
        adapted.append(
            f"max_tokens {request.max_tokens:,} capped to {room:,}: context {context:,} − prompt {counted:,} ({how})"
        )
        return room

    async def _try(self, request: ChatRequest, retries: int) -> ChatResponse:
        """One request: the answer parsed, or _Retryable, or _Refused for an error naming a parameter we sent, or
        TransportFailure for a status not worth retrying."""
        endpoint = self._pick()
        body, adapted = await self._body(request, endpoint)
        payload = json.dumps(body).encode()
        headers = {**self._headers, "X-Omega-Purpose": request.purpose}
        started = time.perf_counter()
        endpoint.in_flight += 1
        post = self.session.post(
            endpoint.chat_url, data=payload, headers=headers, proxy=endpoint.proxy, proxy_auth=endpoint.proxy_auth
        )
        try:
            async with post as answer:
                answer_body = await answer.read()  # the whole answer in one piece
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
            response = self._parse(answer_body, endpoint.base_url, latency, retries)
            response.adapted = adapted
            if body["max_tokens"] != request.max_tokens:
                response.max_tokens = body["max_tokens"]
            return response
        text = answer_body.decode(errors="replace")
        error = f"HTTP {status} from {endpoint.base_url}: {text[:300]}"
        parameter = profiles.refused_parameter(status, text, body)
        if parameter is not None:
            raise _Refused(parameter, error, endpoint)
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
        details = usage.get("prompt_tokens_details")  # vLLM: with --enable-prompt-tokens-details
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        response = ChatResponse(
            texts=[],
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(cached) if isinstance(cached, int | float) and not isinstance(cached, bool) else None,
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
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            response.finish_reasons.append(reason if isinstance(reason, str) else "")
        return response


def _gave_up(failure: _Retryable, retries: int) -> TransportFailure:
    return TransportFailure(f"gave up after {retries + 1} tries: {failure}", retries=retries, endpoint=failure.endpoint)


def _part(request: ChatRequest, start: int, count: int) -> ChatRequest:
    """Samples start … start + count − 1 of a request: n = count, each part its own seeds."""
    return replace(request, n=count, seed=None if request.seed is None else request.seed + start)


def _merged(parts: list[ChatResponse], *, adapted: list[str]) -> ChatResponse:
    """Several answers to one request as one response (the samples in order)."""
    notes = list(dict.fromkeys([*adapted, *(a for p in parts for a in p.adapted)]))
    capped = [p.max_tokens for p in parts if p.max_tokens is not None]
    return ChatResponse(
        texts=[t for p in parts for t in p.texts],
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        completion_tokens=sum(p.completion_tokens for p in parts),
        cached_tokens=None if any(p.cached_tokens is None for p in parts) else sum(p.cached_tokens for p in parts),
        latency_ms=max(p.latency_ms for p in parts),
        endpoint=",".join(sorted({e for p in parts for e in p.endpoint.split(",") if e})),
        model=parts[0].model,
        transport_retries=sum(p.transport_retries for p in parts),
        requests=sum(p.requests for p in parts),
        finish_reasons=[r for p in parts for r in p.finish_reasons],
        adapted=notes,
        max_tokens=min(capped) if capped else None,
    )


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
