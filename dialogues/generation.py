"""Driving dialogues forward: which model to talk to, and stepping dialogues until their runs are done.

The async functions run inside one event loop that owns the LLM client; database work goes through
sync_to_async (one thread), so the loop never blocks on the database and no transaction spans an LLM call.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from dialogues.engine.llm import LLM, OpenAIChatClient
from dialogues.engine.simulated import MODEL_NAME, SimulatedExpert
from dialogues.engine.stepper import StepFailed, advance
from dialogues.models import Dialogue, DialogueStatus
from dialogues.services.runs import (
    Backend,
    dialogue_fail,
    dialogue_step_begin,
    dialogue_step_save,
    run_refresh_status,
)


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
        return SimulatedExpert()
    return OpenAIChatClient(
        backend.base_urls,
        backend.model,
        api_key=settings.OMEGA_LLM_API_KEY,
        timeout=settings.OMEGA_LLM_TIMEOUT,
        max_in_flight_per_endpoint=settings.OMEGA_LLM_MAX_IN_FLIGHT,
        transport_retries=settings.OMEGA_LLM_TRANSPORT_RETRIES,
        structured_output=settings.OMEGA_LLM_STRUCTURED_OUTPUT,
    )


async def close_llm(llm: LLM) -> None:
    closer = getattr(llm, "aclose", None)
    if closer is not None:
        await closer()


@dataclass(frozen=True)
class StepReport:
    dialogue_id: int
    kind: str  # "turn", "rating", "finished", "failed", "skipped"
    turn_index: int | None = None
    finished: bool = False
    failure: str = ""
    calls: int = 0
    tokens: int = 0


async def step_dialogue(dialogue_id: int, llm: LLM) -> StepReport:
    """Advance one dialogue by exactly one step (the turn and, when due, its rating)."""
    begun = await sync_to_async(dialogue_step_begin)(dialogue_id=dialogue_id)
    if begun is None:
        return StepReport(dialogue_id, "skipped")
    state, step_attempt = begun
    try:
        result = await advance(state, llm)
    except StepFailed as failure:
        await sync_to_async(dialogue_fail)(
            dialogue_id=dialogue_id, step_attempt=step_attempt, reason=failure.reason, calls=failure.calls
        )
        return StepReport(dialogue_id, "failed", failure=failure.reason, calls=len(failure.calls))
    saved = await sync_to_async(dialogue_step_save)(dialogue_id=dialogue_id, step_attempt=step_attempt, result=result)
    tokens = sum(c.prompt_tokens + c.completion_tokens for c in result.calls)
    kind = "turn" if result.turn is not None else ("rating" if result.rating is not None else "finished")
    index = result.turn.index if result.turn is not None else result.rating_index
    return StepReport(
        dialogue_id,
        kind,
        turn_index=index,
        finished=saved.finished or result.finished,
        calls=len(result.calls),
        tokens=tokens,
    )


def _active_dialogue_ids(run_id: int) -> list[int]:
    return list(
        Dialogue.objects.filter(run_id=run_id, status__in=[DialogueStatus.PENDING, DialogueStatus.RUNNING])
        .order_by("id")
        .values_list("id", flat=True)
    )


async def run_to_end(
    run_id: int, llm: LLM, *, concurrency: int = 1, on_step: Callable[[StepReport], object] | None = None
) -> str:
    """Step every dialogue of a run (and the regenerated attempts it spawns) until none is active."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def drive(dialogue_id: int) -> None:
        async with semaphore:
            while True:
                report = await step_dialogue(dialogue_id, llm)
                if on_step is not None:
                    outcome = on_step(report)
                    if inspect.isawaitable(outcome):
                        await outcome
                if report.kind in {"failed", "skipped"} or report.finished:
                    return

    while True:
        active = await sync_to_async(_active_dialogue_ids)(run_id)
        if not active:
            break
        await asyncio.gather(*(drive(dialogue_id) for dialogue_id in active))
    return await sync_to_async(run_refresh_status)(run_id=run_id)
