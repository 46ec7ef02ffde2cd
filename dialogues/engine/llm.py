"""The LLM boundary: OpenAI-compatible chat completions over httpx (vLLM in production).

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
    latency_ms: float = 0.0
    endpoint: str = ""
    model: str = ""
    transport_retries: int = 0
    requests: int = 1


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


class LLM(Protocol):
    simulated: bool
    model: str

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def check(self) -> None:
        """Raise ModelNotServed (or TransportFailure) unless every endpoint serves the model."""
