"""Driving dialogues forward: one leased step (`step_dialogue`: begin, the engine's LLM calls, save, announce),
a dispatched dialogue stepped for as long as this process holds its lease (`drive_dialogue`), and a whole run
in this process (`run_to_end`, the CLI's in-process mode).

Everything async here runs inside one event loop that owns the LLM clients (one pooled client per backend).
Database work goes to a small thread pool (`db`), so the loop never blocks on the database, the number of
connections a process holds is capped, and no transaction spans an LLM call. Celery workers use the same
functions through the process loop in runs/worker.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

from dialogues.engine.actions import Action
from dialogues.engine.llm import LLM
from dialogues.engine.stepper import StepFailed, advance
from dialogues.llm.backends import Backend, LLMPool
from dialogues.llm.sided import SidedLLM
from dialogues.runs.events import announce_step
from dialogues.runs.leases import Begun, Dispatch, dialogue_step_begin, dialogue_step_prepared, leases_extend
from dialogues.runs.lifecycle import run_dispatch, run_refresh_status, run_take_over
from dialogues.runs.steps import dialogue_fail, dialogue_step_save

logger = logging.getLogger(__name__)


T = TypeVar("T")


_db_executor: ThreadPoolExecutor | None = None


_db_executor_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _db_executor
    with _db_executor_lock:
        if _db_executor is None:
            _db_executor = ThreadPoolExecutor(max_workers=settings.OMEGA_DB_THREADS, thread_name_prefix="omega-db")
        return _db_executor


def _in_db_thread(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    close_old_connections()  # a connection broken by a database restart is replaced
    try:
        return fn(**kwargs)
    finally:
        close_old_connections()  # with a pool, hands the connection back


async def db(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Run a synchronous database function in the capped database threads."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), functools.partial(_in_db_thread, fn, kwargs))


# Leases held by steps running in this process (dialogue id -> token), renewed by the heartbeat.
_held: dict[int, str] = {}


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def heartbeat(stop: asyncio.Event) -> None:
    """Renew this process's leases until `stop` is set."""
    while not stop.is_set():
        await wait_or_stop(stop, settings.OMEGA_LEASE_HEARTBEAT_SECONDS)
        if _held:
            try:
                await db(leases_extend, holders=dict(_held))
            except Exception:  # the database may be away for a moment; the next beat tries again
                logger.warning("lease heartbeat failed", exc_info=True)


@dataclass(frozen=True)
class StepReport:
    dialogue_id: int
    kind: str  # "turn", "rating", "finished", "failed", "skipped", "dropped"
    turn_index: int | None = None
    finished: bool = False
    next_token: str | None = None
    run_id: int | None = None
    failure: str = ""
    calls: int = 0
    tokens: int = 0


async def step_dialogue(
    dialogue_id: int,
    llms: Callable[[Backend], LLM],
    token: str | None = None,
    human: Action | None = None,
    author: int | None = None,
) -> StepReport:
    """Advance one dialogue by exactly one step (the turn and, when due, its rating).

    With a token, the step is dispatched work and must hold the dialogue's lease; without, it is a manual step,
    which waits afterwards. A person's action (`human`) is a step of its own: the expert goes on after it.
    """
    begun = None if token is None or human is not None else dialogue_step_prepared(dialogue_id=dialogue_id, token=token)
    if begun is None:
        begun = await db(dialogue_step_begin, dialogue_id=dialogue_id, token=token, human=human is not None)
    if not isinstance(begun, Begun):
        if begun.waiting:
            await announce_step(dialogue_id=dialogue_id, run_id=None, rated=None, done=True)
        return StepReport(dialogue_id, "waiting" if begun.waiting else "skipped", failure=begun.reason)
    run_id = begun.run_id
    _held[dialogue_id] = begun.token
    try:
        try:
            llm = llms(begun.backend)
            if begun.reference is not None and begun.agent_side is not None:  # the agent against a reference
                other = llms(begun.reference)
                llm = SidedLLM(llm, other) if begun.agent_side == 0 else SidedLLM(other, llm)
            result = await advance(begun.state, llm, human)
        except StepFailed as failure:
            saved = await db(
                dialogue_fail,
                dialogue_id=dialogue_id,
                step_attempt=begun.step_attempt,
                reason=failure.reason,
                calls=failure.calls,
                token=begun.token,
            )
            tokens = sum(c.prompt_tokens + c.completion_tokens for c in failure.calls)
            if saved.saved:
                await announce_step(dialogue_id=dialogue_id, run_id=run_id, rated=None, done=True)
            return StepReport(
                dialogue_id,
                "failed" if saved.saved else "dropped",
                finished=saved.finished,
                run_id=run_id,
                failure=failure.reason,
                calls=len(failure.calls),
                tokens=tokens,
            )
        saved = await db(
            dialogue_step_save,
            dialogue_id=dialogue_id,
            step_attempt=begun.step_attempt,
            result=result,
            token=begun.token,
            manual=token is None and human is None,
            author_id=author,
            begun=begun,
        )
    finally:
        _held.pop(dialogue_id, None)
    if not saved.saved:
        return StepReport(dialogue_id, "dropped", run_id=run_id, failure=saved.reason)
    rated = result.rating_index if result.turn is None else None  # a closing rating changes an older turn
    done = saved.finished or saved.waiting or token is None
    await announce_step(dialogue_id=dialogue_id, run_id=run_id, rated=rated, done=done)
    tokens = sum(c.prompt_tokens + c.completion_tokens for c in result.calls)
    kind = "turn" if result.turn is not None else ("rating" if result.rating is not None else "finished")
    index = result.turn.index if result.turn is not None else result.rating_index
    return StepReport(
        dialogue_id,
        kind,
        turn_index=index,
        finished=saved.finished,
        next_token=saved.next_token,
        run_id=run_id,
        calls=len(result.calls),
        tokens=tokens,
    )


async def drive_dialogue(
    dialogue_id: int,
    llms: Callable[[Backend], LLM],
    token: str | None,
    *,
    human: Action | None = None,
    author: int | None = None,
    on_step: Callable[[StepReport], Awaitable[object]] | None = None,
) -> StepReport:
    """Step a dispatched dialogue for as long as this process holds its lease: until it finishes, fails, waits
    (paused, or a person's move) or loses the lease. Every step is begun and saved on its own, exactly as a single
    step is, so a crash loses at most the step in flight; the next step starts here without a trip through the
    broker and from the state this process just saved. Returns the last step's report."""
    step = await step_dialogue(dialogue_id, llms, token, human=human, author=author)
    while True:
        if on_step is not None:
            await on_step(step)
        if step.next_token is None:
            return step
        step = await step_dialogue(dialogue_id, llms, step.next_token)


async def run_to_end(
    run_id: int, llms: Callable[[Backend], LLM], *, on_step: Callable[[StepReport], object] | None = None
) -> str:
    """Step a run's dialogues (and the regenerated attempts they spawn) until none is left, keeping at most the
    run's max_in_flight in flight. This process takes over whatever of the run is in flight: use it when nothing
    else steps the run (not beside Celery workers). Returns the run's status (finished, paused or cancelled)."""
    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(stop))
    running: set[asyncio.Task] = set()

    async def report(step: StepReport) -> None:
        if on_step is not None:
            outcome = on_step(step)
            if inspect.isawaitable(outcome):
                await outcome

    async def drive(dispatch: Dispatch) -> None:
        await drive_dialogue(dispatch.dialogue_id, llms, dispatch.token, on_step=report)
        start(await db(run_dispatch, run_id=run_id))

    def start(dispatches: list[Dispatch]) -> None:
        for dispatch in dispatches:
            task = asyncio.create_task(drive(dispatch))
            running.add(task)
            task.add_done_callback(running.discard)

    try:
        start(await db(run_take_over, run_id=run_id))
        while running:
            await asyncio.gather(*list(running))
    finally:
        stop.set()
        await beat
    return await db(run_refresh_status, run_id=run_id)


def run_coroutine(factory: Callable[[LLMPool], Awaitable[T]]) -> T:
    """Run `factory(llms)` in a fresh event loop with its own LLM clients (the CLI's in-process mode)."""

    async def main() -> T:
        llms = LLMPool()
        try:
            return await factory(llms)
        finally:
            await llms.aclose()

    return asyncio.run(main())
