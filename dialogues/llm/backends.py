"""Which model a run talks to (`Backend`: the one configured in the environment, a run's, a fork's, an evaluation
run's reference), whether it is served, and the LLM clients for it: an OpenAI-compatible server or the simulated
expert, one pooled client per backend for the life of an event loop (`LLMPool`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from dialogues.engine.llm import LLM, LLMError
from dialogues.llm.client import OpenAIChatClient
from dialogues.llm.profile import Forced, ServerProfile
from dialogues.llm.simulated import MODEL_NAME, SimulatedExpert

if TYPE_CHECKING:  # runs' models are only read here (runs builds on this module, not the other way)
    from dialogues.runs.models import Dialogue, Run


@dataclass(frozen=True)
class Backend:
    """Which model a run talks to. The API key is never stored."""

    kind: str  # "simulated" or "openai"
    model: str
    base_urls: tuple[str, ...] = ()

    @property
    def simulated(self) -> bool:
        return self.kind == "simulated"

    @classmethod
    def of(cls, run: Run) -> Backend:
        return cls(kind=run.backend, model=run.model, base_urls=tuple(run.endpoints))

    @classmethod
    def reference_of(cls, run: Run) -> Backend | None:
        """An evaluation run's reference model, if it has one (the other side of every dialogue)."""
        if not run.reference_model:
            return None
        return cls(kind=run.reference_backend, model=run.reference_model, base_urls=tuple(run.reference_endpoints))

    @classmethod
    def for_dialogue(cls, dialogue: Dialogue) -> Backend:
        """The run's backend, with the model a fork asked for (served by the same endpoints)."""
        backend = cls.of(dialogue.run)
        model = (dialogue.changes or {}).get("model")
        return backend if not model or backend.simulated else cls(backend.kind, model, backend.base_urls)


def configured_backend(*, simulated: bool = False) -> Backend:
    """The model from the environment (OMEGA_LLM_BASE_URLS, OMEGA_LLM_MODEL); the simulated expert when none
    is configured or when asked for."""
    if simulated or not settings.OMEGA_LLM_BASE_URLS:
        return Backend(kind="simulated", model=MODEL_NAME)
    if not settings.OMEGA_LLM_MODEL:
        raise ValueError("OMEGA_LLM_BASE_URLS is set but OMEGA_LLM_MODEL is not: say which model to use.")
    return Backend(kind="openai", model=settings.OMEGA_LLM_MODEL, base_urls=tuple(settings.OMEGA_LLM_BASE_URLS))


def make_llm(backend: Backend) -> LLM:
    """Call inside the event loop that will use it."""
    if backend.simulated:
        return SimulatedExpert(latency_ms=settings.OMEGA_SIMULATED_LATENCY_MS)
    return OpenAIChatClient(
        backend.base_urls,
        backend.model,
        api_key=settings.OMEGA_LLM_API_KEY,
        timeout=settings.OMEGA_LLM_TIMEOUT,
        max_in_flight_per_endpoint=settings.OMEGA_LLM_MAX_IN_FLIGHT,
        transport_retries=settings.OMEGA_LLM_TRANSPORT_RETRIES,
        retry_after_max=settings.OMEGA_LLM_RETRY_AFTER_MAX,
        forced=forced_capabilities(),
    )


def forced_capabilities() -> Forced:
    """The capabilities the settings force (OMEGA_LLM_N, _SEED, _STRUCTURED_OUTPUT, _CONTEXT_LENGTH)."""
    seed = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}.get(settings.OMEGA_LLM_SEED)
    return Forced(
        n=settings.OMEGA_LLM_N or None,
        seed=seed,
        structured=settings.OMEGA_LLM_STRUCTURED_OUTPUT or None,
        context_length=settings.OMEGA_LLM_CONTEXT_LENGTH or None,
    )


@dataclass(frozen=True)
class Probe:
    """What a backend's servers can do (one profile per endpoint), or why the model cannot be used."""

    profiles: tuple[ServerProfile, ...] = ()
    problem: str | None = None

    def as_json(self) -> list[dict]:
        return [p.as_dict() for p in self.profiles]


def backend_probe(backend: Backend) -> Probe:
    """Probe the backend's servers (once per process and endpoint; profile.py) before a run starts, so that a
    missing model fails at once instead of stalling the run, and the run records what its servers can do. The
    simulated expert is always there and has no profile."""
    if backend.simulated:
        return Probe()

    async def probe() -> list[ServerProfile]:
        llm = make_llm(backend)
        try:
            return await llm.profiles()  # type: ignore[attr-defined]
        finally:
            await close_llm(llm)

    try:
        return Probe(profiles=tuple(asyncio.run(probe())))
    except LLMError as exc:
        return Probe(problem=str(exc))
    except ValueError as exc:  # a setting that forces a capability is wrong
        return Probe(problem=str(exc))


def profile_lines(profiles: list[ServerProfile] | tuple[ServerProfile, ...], who: str = "Server") -> list[str]:
    """The profiles as the commands print them before a run: one line each, then what the probe saw."""
    lines = []
    for p in profiles:
        lines.append(f"{who} {p.endpoint} ({p.model}): {p.summary()}")
        lines.extend(
            f"    {note}" for note in [*(f"set by hand: {', '.join(p.forced)}" for _ in p.forced[:1]), *p.notes]
        )
    return lines


def served_problem(backend: Backend) -> str | None:
    """Why the backend's model cannot be used (it is not served, the server is away), or None when it can."""
    return backend_probe(backend).problem


async def close_llm(llm: LLM) -> None:
    closer = getattr(llm, "aclose", None)
    if closer is not None:
        await closer()


class LLMPool:
    """One client per backend for the life of an event loop (pooled connections are reused across steps)."""

    def __init__(self) -> None:
        self._clients: dict[Backend, LLM] = {}

    def __call__(self, backend: Backend) -> LLM:
        if backend not in self._clients:
            self._clients[backend] = make_llm(backend)
        return self._clients[backend]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await close_llm(client)
        self._clients.clear()
