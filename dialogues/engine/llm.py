"""The LLM boundary: what the engine asks of a model (ChatRequest), what comes back (ChatResponse), and how it
fails. The clients (dialogues/llm/) speak to OpenAI-compatible servers and adapt each request to what the server
can do (its profile); the engine only sees answers, how each ended (finish_reason) and what was adapted.

Transport errors (429, 5xx, timeouts, refused connections) are retried with backoff a bounded number of times,
then raise TransportFailure. Answers that arrive but cannot be used are the engine's business (it re-asks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatRequest:
    purpose: str
    messages: tuple[dict[str, str], ...]
    n: int = 1
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 8192
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    # Facts for offline backends (the simulated expert); never sent to a server.
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class ChatResponse:
    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # prompt tokens the server served from its prefix cache (usage.prompt_tokens_details.cached_tokens); None when
    # it does not say (vLLM says only with --enable-prompt-tokens-details)
    cached_tokens: int | None = None
    latency_ms: float = 0.0
    endpoint: str = ""
    model: str = ""
    transport_retries: int = 0
    requests: int = 1
    # how each answer ended, as the server said ("stop", "length" when cut off at max_tokens); "" when not said
    finish_reasons: list[str] = field(default_factory=list)
    # what the client changed in the request for this server (split n, omitted seed, capped max_tokens…)
    adapted: list[str] = field(default_factory=list)
    max_tokens: int | None = None  # the max_tokens sent, when it differs from the request's

    def cut_off(self, index: int = 0) -> bool:
        """Whether answer `index` ended at the token limit (finish_reason "length")."""
        return index < len(self.finish_reasons) and self.finish_reasons[index] == "length"


class LLMError(Exception):
    pass


class TransportFailure(LLMError):
    """The server could not be reached or kept failing after the bounded retries."""

    def __init__(self, message: str, *, retries: int = 0, endpoint: str = "") -> None:
        super().__init__(message)
        self.retries = retries
        self.endpoint = endpoint


class MalformedResponse(LLMError):
    """HTTP 200, but the body is not a chat completion (truncated, not JSON, no choices)."""

    def __init__(self, message: str, *, response: ChatResponse) -> None:
        super().__init__(message)
        self.response = response


class ModelNotServed(LLMError):
    pass


class PromptTooLong(LLMError):
    """The prompt alone does not fit the server's context: no answer is possible, asking again does not help."""


class LLM(Protocol):
    simulated: bool
    model: str

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def check(self) -> None:
        """Raise ModelNotServed (or TransportFailure) unless every endpoint serves the model."""
