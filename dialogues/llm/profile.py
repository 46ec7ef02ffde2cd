"""What an OpenAI-compatible server can do (its profile), found by a few tiny requests, and how a request is
written for it.

Servers differ where it matters to the method (docs/operations.md, "Serving"): vLLM returns n choices for n > 1,
llama.cpp's llama-server refuses n > 1, llama-cpp-python ignores n and returns one; llama-cpp-python answers
HTTP 500 to response_format "json_schema" and takes "json_object" with a "schema"; older vLLM takes guided_json;
contexts range from 2,048 tokens to a million. `probe` asks each question once per endpoint and model (a few tokens
each) and the answer is kept for the life of the process. Every capability can be forced by a setting (`Forced`,
from OMEGA_LLM_N, OMEGA_LLM_SEED, OMEGA_LLM_STRUCTURED_OUTPUT, OMEGA_LLM_CONTEXT_LENGTH) for a server whose answers
to a probe mislead; a forced capability is not probed.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from dialogues.engine.llm import ModelNotServed, TransportFailure

N_NATIVE = "native"  # n > 1 returns n choices
N_FEWER = "fewer"  # n > 1 is accepted but fewer choices come back (ignored)
N_REFUSED = "refused"  # n > 1 is answered with an error
N_MODES = (N_NATIVE, N_FEWER, N_REFUSED)

# the structured-output dialects, in the order they are tried
# response_format {"type": "json_schema", "json_schema": {"name", "schema"}}: OpenAI, vLLM, SGLang, llama-server
JSON_SCHEMA = "json_schema"
JSON_OBJECT = "json_object"  # response_format {"type": "json_object", "schema": …}: llama-cpp-python, llama-server
GUIDED_JSON = "guided_json"  # {"guided_json": schema}: vLLM before response_format json_schema
NO_STRUCTURE = "off"
DIALECTS = (JSON_SCHEMA, JSON_OBJECT, GUIDED_JSON)

# How many tokens a chat template adds around the messages, at most (roles, separators, the generation prompt).
TEMPLATE_TOKENS_PER_MESSAGE = 16
TEMPLATE_TOKENS = 32

_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Forced:
    """Capabilities set by hand (settings), not probed. None: probe it."""

    n: str | None = None  # "native" or "separate" (every sample its own request)
    seed: bool | None = None
    structured: str | None = None  # a dialect, or "off"
    context_length: int | None = None

    def __post_init__(self) -> None:
        if self.n not in (None, N_NATIVE, "separate"):
            raise ValueError(f"OMEGA_LLM_N must be 'native' or 'separate', not {self.n!r}")
        if self.structured not in (None, NO_STRUCTURE, *DIALECTS):
            raise ValueError(
                f"OMEGA_LLM_STRUCTURED_OUTPUT must be auto, off or one of {', '.join(DIALECTS)}, "
                f"not {self.structured!r}"
            )
        if self.context_length is not None and self.context_length < 1:
            raise ValueError("OMEGA_LLM_CONTEXT_LENGTH must be a positive number of tokens")

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass
class ServerProfile:
    """What one endpoint can do for one model, and how that was found out."""

    endpoint: str
    model: str
    server: str = "unknown"  # what the answers suggest: vLLM, llama.cpp (llama-server), llama-cpp-python, …
    served: list[str] = field(default_factory=list)
    model_listed: bool = True  # False: /v1/models does not list the name, but the server answers to it
    context_length: int | None = None
    context_source: str = ""
    n: str = N_NATIVE
    n_max: int | None = None  # native: the most choices one request may ask for (llama-server: its slots)
    seed: bool = True
    structured: str = JSON_SCHEMA
    structured_enforced: bool | None = None  # None: not checked (forced, or off)
    tokenize: str = ""  # how a prompt's tokens are counted on this server: vllm, llama.cpp, llama-cpp-python or ""
    forced: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the probe saw, in words (refusals quoted)
    learned: list[str] = field(default_factory=list)  # what requests taught afterwards (a refusal mid-run)
    probe_requests: int = 0
    probe_seconds: float = 0.0

    @property
    def seed_reproducible(self) -> bool:
        return self.seed

    @property
    def samples_in_one_request(self) -> bool:
        return self.n == N_NATIVE

    def summary(self) -> str:
        """One line: what a request to this server looks like."""
        context = f"context {self.context_length:,} tokens" if self.context_length else "context not known"
        n = {
            N_NATIVE: f"up to {self.n_max} samples per request" if self.n_max else "n samples in one request",
            N_FEWER: "n ignored: one request per sample",
            N_REFUSED: "n > 1 refused: one request per sample",
        }[self.n]
        if self.structured == NO_STRUCTURE:
            structured = "no structured output (prompt instructions and the tolerant parser)"
        else:
            enforced = {True: "enforced", False: "accepted, not enforced", None: "not checked"}[
                self.structured_enforced
            ]
            structured = f"structured output as {self.structured} ({enforced})"
        seed = "seed accepted" if self.seed else "seed refused: not seed-reproducible"
        return f"{self.server}: {context}; {n}; {structured}; {seed}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerProfile:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def v1_url(base_url: str) -> str:
    return base_url if base_url.endswith("/v1") else f"{base_url}/v1"


def root_url(base_url: str) -> str:
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


# --- writing a request for a server ----------------------------------------------------------------------


def response_format_fields(dialect: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The body fields that ask this server for an answer of this JSON schema."""
    if dialect == JSON_SCHEMA:
        return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
    if dialect == JSON_OBJECT:
        return {"response_format": {"type": "json_object", "schema": schema}}
    if dialect == GUIDED_JSON:
        return {"guided_json": schema}
    return {}


def weaker_dialect(dialect: str) -> str:
    """The next dialect to try after a server refused this one (then none)."""
    if dialect in DIALECTS and DIALECTS.index(dialect) + 1 < len(DIALECTS):
        return DIALECTS[DIALECTS.index(dialect) + 1]
    return NO_STRUCTURE


_CONTEXT_IN_ERROR = re.compile(r"(?:maximum context length is|context (?:size|length) (?:of|is))\D{0,20}(\d{3,})", re.I)


def refused_parameter(status: int, text: str, body: dict[str, Any]) -> str | None:
    """Which parameter we sent a 4xx or 5xx answer names, if any: "seed", "structured", "n", "context"; None when
    the answer names none of them (then it is an ordinary failure, retried or not by its status)."""
    if status < 400:
        return None
    lowered = text.lower()
    if "context" in lowered and ("exceed" in lowered or "maximum" in lowered or "too long" in lowered):
        return "context"
    if ("response_format" in body or "guided_json" in body) and any(
        word in lowered for word in ("response_format", "json_schema", "json_object", "schema", "grammar", "guided")
    ):
        return "structured"
    if "seed" in body and "seed" in lowered:
        return "seed"
    if int(body.get("n") or 1) > 1 and (re.search(r"\bn\b", lowered) or "1 <= value <= 1" in lowered):
        return "n"
    return None


PROBE_N = 8  # more samples than a rating asks for by default (5)
_N_BOUND = re.compile(r"<=\s*value\s*<=\s*(\d+)|at most (\d+)|between 1 and (\d+)", re.I)


def n_from_refusal(text: str) -> tuple[str, int | None]:
    """What a refusal of n > 1 allows: ("native", K) when it names a bound K ≥ 2 (llama-server: "Value must be
    between 1 <= value <= 2", its slots), else ("refused", None)."""
    match = _N_BOUND.search(text)
    bound = int(next(g for g in match.groups() if g)) if match else 1
    return (N_NATIVE, bound) if bound >= 2 else (N_REFUSED, None)


def context_in_error(text: str) -> int | None:
    """The context length an error names ("This model's maximum context length is 4096 tokens…"), if any."""
    match = _CONTEXT_IN_ERROR.search(text)
    return int(match.group(1)) if match else None


# --- probing ---------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    text: str
    data: Any = None


class _Prober:
    def __init__(
        self, session: aiohttp.ClientSession, endpoint: str, model: str, headers: dict[str, str], timeout: float
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.model = model
        self.headers = headers
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self.requests = 0

    async def get(self, url: str) -> _Answer:
        return await self._send("GET", url, None)

    async def post(self, url: str, body: dict[str, Any], purpose: str) -> _Answer:
        return await self._send("POST", url, body, purpose)

    async def chat(self, purpose: str, **extra: Any) -> _Answer:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": extra.pop("content", "Say OK.")}],
            "max_tokens": extra.pop("max_tokens", 1),
            "temperature": extra.pop("temperature", 1.0),
            "top_p": 1.0,
            **extra,
        }
        return await self.post(f"{v1_url(self.endpoint)}/chat/completions", body, purpose)

    async def _send(self, method: str, url: str, body: dict[str, Any] | None, purpose: str = "probe") -> _Answer:
        self.requests += 1
        headers = {**self.headers, "X-Omega-Purpose": purpose}
        proxy, proxy_auth = None, None
        with contextlib.suppress(LookupError):  # the proxy from the environment, as for every request
            proxy, proxy_auth = get_env_proxy_for_url(URL(url))
        try:
            async with self.session.request(
                method, URL(url), json=body, headers=headers, timeout=self.timeout, proxy=proxy, proxy_auth=proxy_auth
            ) as answer:
                status, text = answer.status, await answer.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportFailure(
                f"{url} cannot be reached: {type(exc).__name__}: {exc}", endpoint=self.endpoint
            ) from exc
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        return _Answer(status, text, data)


def _choices(answer: _Answer) -> list[dict[str, Any]]:
    choices = answer.data.get("choices") if isinstance(answer.data, dict) else None
    return [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []


def _quote(answer: _Answer) -> str:
    return f"HTTP {answer.status}: {answer.text.strip()[:160]}"


async def probe(
    session: aiohttp.ClientSession,
    endpoint: str,
    model: str,
    *,
    headers: dict[str, str],
    forced: Forced,
    timeout: float = 120.0,
) -> ServerProfile:
    """Find out what `endpoint` can do for `model`. Raises TransportFailure when the server cannot be reached or
    refuses the smallest chat request, ModelNotServed when it does not know the model."""
    started = time.perf_counter()
    prober = _Prober(session, endpoint, model, headers, timeout)
    profile = ServerProfile(endpoint=endpoint, model=model, forced=forced.names())
    await _models(prober, profile)
    await _context(prober, profile, forced)
    await _basic_chat(prober, profile)
    if forced.seed is None:
        answer = await prober.chat("probe.seed", seed=1234)
        profile.seed = answer.status == 200
        if not profile.seed:
            profile.notes.append(f"seed refused ({_quote(answer)})")
    else:
        profile.seed = forced.seed
    if forced.n is None:
        answer = await prober.chat("probe.n", n=PROBE_N)
        returned = len(_choices(answer))
        if answer.status != 200:
            profile.n, profile.n_max = n_from_refusal(answer.text)
            profile.notes.append(f"n = {PROBE_N} refused ({_quote(answer)})")
        elif returned < PROBE_N:
            profile.n = N_FEWER
            profile.notes.append(f"n = {PROBE_N} returned {returned} choice(s)")
        else:
            profile.n = N_NATIVE
    else:
        profile.n = N_NATIVE if forced.n == N_NATIVE else N_REFUSED
    if forced.structured is None:
        await _structured(prober, profile)
    else:
        profile.structured = forced.structured
    if profile.context_length:
        await _tokenize(prober, profile)
    profile.probe_requests = prober.requests
    profile.probe_seconds = round(time.perf_counter() - started, 3)
    return profile


async def served_models(
    session: aiohttp.ClientSession, endpoint: str, model: str, *, headers: dict[str, str]
) -> list[str]:
    """The models the endpoint lists now (the server is there); raises TransportFailure otherwise."""
    profile = ServerProfile(endpoint=endpoint, model=model)
    await _models(_Prober(session, endpoint, model, headers, timeout=15), profile)
    return profile.served


async def _models(prober: _Prober, profile: ServerProfile) -> None:
    url = f"{v1_url(prober.endpoint)}/models"
    answer = await prober.get(url)
    if answer.status != 200:
        raise TransportFailure(f"{url} answered HTTP {answer.status}", endpoint=prober.endpoint)
    try:
        entries = [m for m in answer.data["data"] if isinstance(m, dict)]
        profile.served = [str(m["id"]) for m in entries]
    except (KeyError, TypeError) as exc:
        raise TransportFailure(f"{url} did not return a model list", endpoint=prober.endpoint) from exc
    profile.model_listed = prober.model in profile.served
    entry = next((m for m in entries if m.get("id") == prober.model), entries[0] if len(entries) == 1 else {})
    owner = str(entry.get("owned_by") or "").lower()
    profile.server = {"vllm": "vLLM", "llamacpp": "llama.cpp (llama-server)", "me": "llama-cpp-python"}.get(
        owner, "SGLang" if owner == "sglang" else ("Ollama" if owner == "library" else owner or "unknown")
    )
    for key, source in (("max_model_len", "/v1/models max_model_len"), ("context_length", "/v1/models context_length")):
        if isinstance(entry.get(key), int) and entry[key] > 0:
            profile.context_length, profile.context_source = entry[key], source
            return
    meta = entry.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("n_ctx"), int) and meta["n_ctx"] > 0:
        profile.context_length, profile.context_source = meta["n_ctx"], "/v1/models meta.n_ctx (llama.cpp)"


async def _context(prober: _Prober, profile: ServerProfile, forced: Forced) -> None:
    if forced.context_length is not None:
        profile.context_length, profile.context_source = forced.context_length, "setting (OMEGA_LLM_CONTEXT_LENGTH)"
        return
    if profile.context_length:
        return
    answer = await prober.get(f"{root_url(prober.endpoint)}/props")
    settings = answer.data.get("default_generation_settings") if isinstance(answer.data, dict) else None
    if answer.status == 200 and isinstance(settings, dict) and isinstance(settings.get("n_ctx"), int):
        profile.context_length, profile.context_source = settings["n_ctx"], "/props n_ctx (llama.cpp)"
        if profile.server == "unknown":
            profile.server = "llama.cpp (llama-server)"
        return
    profile.notes.append("the server does not say its context length (set OMEGA_LLM_CONTEXT_LENGTH to cap max_tokens)")


async def _basic_chat(prober: _Prober, profile: ServerProfile) -> None:
    """The smallest chat request: the model name is answered to, and the server works at all."""
    answer = await prober.chat("probe.chat")
    if answer.status == 200 and _choices(answer):
        if not profile.model_listed:
            profile.notes.append(
                f"/v1/models lists {profile.served}, not {prober.model!r}, but the server answers to that name "
                "(llama.cpp serves its one model under any name)"
            )
        return
    if not profile.model_listed:
        raise ModelNotServed(
            f"{prober.endpoint} does not serve the model {prober.model!r}; it serves {profile.served}. "
            "Set OMEGA_LLM_MODEL to one of these (vLLM: the --served-model-name)."
        )
    raise TransportFailure(
        f"{prober.endpoint} refused the smallest chat request for {prober.model!r}: {_quote(answer)}",
        endpoint=prober.endpoint,
    )


async def _structured(prober: _Prober, profile: ServerProfile) -> None:
    """The first dialect the server accepts and enforces; one it accepts without enforcing if none enforces."""
    accepted: str | None = None
    for dialect in DIALECTS:
        answer = await prober.chat(
            f"probe.{dialect}",
            content="Greet me in one short sentence.",
            max_tokens=24,
            temperature=0.0,
            **response_format_fields(dialect, _PROBE_SCHEMA, "probe"),
        )
        if answer.status != 200 or not _choices(answer):
            profile.notes.append(f"{dialect} refused ({_quote(answer)})")
            continue
        message = _choices(answer)[0].get("message") or {}
        try:
            enforced = json.loads(message.get("content") or "") == {"answer": "yes"}
        except ValueError:
            enforced = False
        if enforced:
            profile.structured, profile.structured_enforced = dialect, True
            return
        profile.notes.append(f"{dialect} accepted but the answer did not follow the schema")
        accepted = accepted or dialect
    if accepted:
        profile.structured, profile.structured_enforced = accepted, False
    else:
        profile.structured, profile.structured_enforced = NO_STRUCTURE, None


async def _tokenize(prober: _Prober, profile: ServerProfile) -> None:
    """How this server counts a prompt's tokens (to cap max_tokens to the context left); none is fine."""
    root = root_url(prober.endpoint)
    messages = [{"role": "user", "content": "hello"}]
    answer = await prober.post(f"{root}/tokenize", {"model": prober.model, "messages": messages}, "probe.tokenize")
    if answer.status == 200 and isinstance(answer.data, dict) and isinstance(answer.data.get("count"), int):
        profile.tokenize = "vllm"
        return
    answer = await prober.post(f"{root}/tokenize", {"content": "hello"}, "probe.tokenize")
    if answer.status == 200 and isinstance(answer.data, dict) and isinstance(answer.data.get("tokens"), list):
        profile.tokenize = "llama.cpp"
        return
    answer = await prober.post(f"{root}/extras/tokenize/count", {"input": "hello"}, "probe.tokenize")
    if answer.status == 200 and isinstance(answer.data, dict) and isinstance(answer.data.get("count"), int):
        profile.tokenize = "llama-cpp-python"


async def count_prompt_tokens(
    session: aiohttp.ClientSession,
    profile: ServerProfile,
    messages: list[dict[str, str]],
    headers: dict[str, str],
    proxy: Any = None,
    proxy_auth: Any = None,
) -> int | None:
    """The prompt's tokens as the server counts them (with the chat template's, where the server applies it), or
    None when it cannot say."""
    root = root_url(profile.endpoint)
    text = "\n".join(m.get("content", "") for m in messages)
    extra = TEMPLATE_TOKENS + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
    if profile.tokenize == "vllm":
        url, body, extra = f"{root}/tokenize", {"model": profile.model, "messages": messages}, 0
    elif profile.tokenize == "llama.cpp":
        url, body = f"{root}/tokenize", {"content": text}
    elif profile.tokenize == "llama-cpp-python":
        url, body = f"{root}/extras/tokenize/count", {"input": text}
    else:
        return None
    try:
        async with session.post(
            URL(url), json=body, headers={**headers, "X-Omega-Purpose": "tokenize"}, proxy=proxy, proxy_auth=proxy_auth
        ) as answer:
            data = await answer.json(content_type=None) if answer.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    count = data.get("count")
    if count is None and isinstance(data.get("tokens"), list):
        count = len(data["tokens"])
    return int(count) + extra if isinstance(count, int) else None


# --- the process's profiles ------------------------------------------------------------------------------

_PROFILES: dict[tuple[str, str, Forced], ServerProfile] = {}


def cached(endpoint: str, model: str, forced: Forced) -> ServerProfile | None:
    return _PROFILES.get((endpoint, model, forced))


def remember(profile: ServerProfile, forced: Forced) -> None:
    _PROFILES[(profile.endpoint, profile.model, forced)] = profile


def forget_all() -> None:
    """Probe again at the next request (tests; an operator after changing a server)."""
    _PROFILES.clear()
