"""Writes for runs and dialogues: creating runs, dispatching dialogues, persisting one engine step, finishing
attempts, pausing, resuming and cancelling, and taking over stale leases.

A step happens in three parts so that no database lock is held while the model thinks:
`dialogue_step_begin` (a short transaction: check the lease, count the step attempt, read the state), the
engine's LLM calls (no transaction), and `dialogue_step_save` (one short transaction: the turn, its rating and
every LLM call, unique on (dialogue, turn index) so a repeated step writes nothing twice).

The database says what is in flight. A dispatched dialogue is `running` and holds a lease: a token and an
expiry. Whoever steps it must present the token; while stepping, the holder extends the expiry (heartbeat). If
a worker dies, its lease goes stale and `runs_reconcile` hands the dialogue to a new token, so the step in
flight is redone once (its unsaved LLM calls were never written, so nothing is counted twice).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, JSONField, Model, Q, Sum
from django.utils import timezone

from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.plan import Move, MoveKind, plan
from dialogues.engine.prompts import prompt_set_version
from dialogues.engine.state import DialogueState
from dialogues.engine.stepper import CallRecord, StepResult
from dialogues.engine.strategy import AttemptOutcome, choose_kept, filter_explanation, passes_filter
from dialogues.models import (
    Branch,
    Dialogue,
    DialogueStatus,
    LLMCall,
    Run,
    RunKind,
    RunStatus,
    StepRating,
    Task,
    Turn,
)
from dialogues.selectors import dialogue_config, dialogue_state

logger = logging.getLogger(__name__)

ACTIVE = (DialogueStatus.PENDING, DialogueStatus.RUNNING)
UNFINISHED = (DialogueStatus.PENDING, DialogueStatus.RUNNING, DialogueStatus.PAUSED)


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


@dataclass(frozen=True)
class Dispatch:
    """A dialogue handed to a stepper, with the lease token it must present."""

    dialogue_id: int
    token: str


def _token() -> str:
    return uuid.uuid4().hex


def _queue_lease() -> timedelta:
    return timedelta(seconds=settings.OMEGA_QUEUE_LEASE_SECONDS)


def _step_lease() -> timedelta:
    return timedelta(seconds=settings.OMEGA_LEASE_SECONDS)


def _stable_int(*parts: object, bits: int = 31) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << bits) - 1)


def dialogue_seed(run_seed: int, task_key: str, attempt: int) -> int:
    return _stable_int("dialogue", run_seed, task_key, attempt)


def nsi_side_for(run_seed: int, task_key: str) -> int:
    """h-NSI: the side that runs the workflow, drawn per task with a seeded RNG (the same for every attempt)."""
    return _stable_int("hnsi-side", run_seed, task_key) % 2


def _new_dialogue(run: Run, task: Task, attempt: int, config: RunConfig) -> Dialogue:
    return Dialogue(
        run=run,
        task=task,
        attempt=attempt,
        seed=dialogue_seed(run.seed, task.external_id, attempt),
        nsi_side=nsi_side_for(run.seed, task.external_id) if config.variant == Variant.HNSI else None,
        simulated=run.simulated,
    )


@transaction.atomic
def run_create(
    *,
    created_by: Any,
    name: str,
    config: RunConfig,
    tasks: list[Task],
    backend: Backend,
    max_in_flight: int | None = None,
    token_budget: int | None = None,
    start_paused: bool = False,
    kind: str = RunKind.GENERATION,
    setting: str = "",
    reference: Backend | None = None,
    agent_sides: dict[int, int] | None = None,
    benchmark: dict[str, Any] | None = None,
) -> Run:
    """A run with its configuration and the first attempt of every task, all pending (or paused, to be stepped
    through by hand). An evaluation run names its setting, the reference model if any, and per task the side the
    agent under test plays."""
    if not tasks:
        raise ValueError("a run needs at least one task")
    config = config.with_changes(model=backend.model)
    run = Run.objects.create(
        name=name,
        created_by=created_by,
        variant=config.variant.value,
        config=config.to_json(),
        prompt_set_version=prompt_set_version(),
        backend=backend.kind,
        model=backend.model,
        endpoints=list(backend.base_urls),
        simulated=backend.simulated or (reference is not None and reference.simulated),
        seed=config.seed,
        max_in_flight=max_in_flight or settings.OMEGA_MAX_DIALOGUES_IN_FLIGHT,
        token_budget=token_budget,
        kind=kind,
        setting=setting,
        reference_backend=reference.kind if reference else "",
        reference_model=reference.model if reference else "",
        reference_endpoints=list(reference.base_urls) if reference else [],
        benchmark=benchmark or {},
    )
    run.tasks.set(tasks)
    dialogues = [_new_dialogue(run, task, 0, config) for task in tasks]
    for dialogue in dialogues:
        dialogue.agent_side = (agent_sides or {}).get(dialogue.task.pk)
    if start_paused:
        for dialogue in dialogues:
            dialogue.status = DialogueStatus.PAUSED
    Dialogue.objects.bulk_create(dialogues, batch_size=500)
    return run


# --- dispatch and leases ---------------------------------------------------------------------------------


def run_dispatch(*, run_id: int) -> list[Dispatch]:
    """Put pending dialogues of a running run in flight, up to its max_in_flight. Returns what to enqueue."""
    with transaction.atomic():
        # the run's row locked, and only the two fields read: this runs each time one of its dialogues ends
        locked = Run.objects.select_for_update().filter(pk=run_id)
        status, limit = locked.values_list("status", "max_in_flight").first() or (None, 0)
        if status != RunStatus.RUNNING:
            return []
        dialogues = Dialogue.objects.filter(run_id=run_id)
        room = limit - dialogues.filter(status=DialogueStatus.RUNNING).count()
        if room <= 0:
            return []
        # Longest first, so the run does not end on a long tail: regenerated attempts, then hard tasks (they
        # tend to need the negotiation workflow, about twice as many calls), then the rest in order.
        pending = list(
            dialogues.filter(status=DialogueStatus.PENDING)
            .order_by("-attempt", "-task__hard", "id")
            .values_list("id", flat=True)[:room]
        )
        until = timezone.now() + _queue_lease()
        dispatched = []
        for dialogue_id in pending:
            token = _token()
            if Dialogue.objects.filter(pk=dialogue_id, status=DialogueStatus.PENDING).update(
                status=DialogueStatus.RUNNING, lease_token=token, lease_until=until
            ):
                dispatched.append(Dispatch(dialogue_id, token))
        if not dispatched and not dialogues.filter(status__in=UNFINISHED).exists():
            _finish(run_id)
        return dispatched


def runs_reconcile(*, run_ids: list[int] | None = None) -> list[Dispatch]:
    """Hand every dialogue whose lease went stale to a new token, and fill the runs' free slots. Safe to run in
    several processes at once: each takeover is a conditional update that only one of them wins."""
    now = timezone.now()
    stale = Dialogue.objects.filter(status=DialogueStatus.RUNNING, run__status=RunStatus.RUNNING).filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True)
    )
    if run_ids is not None:
        stale = stale.filter(run_id__in=run_ids)
    dispatched = []
    for dialogue_id in stale.values_list("id", flat=True):
        token = _token()
        taken = (
            Dialogue.objects.filter(pk=dialogue_id, status=DialogueStatus.RUNNING)
            .filter(Q(lease_until__lt=now) | Q(lease_until__isnull=True))
            .update(lease_token=token, lease_until=now + _queue_lease())
        )
        if taken:
            logger.warning("dialogue %s: lease went stale, re-enqueued", dialogue_id)
            dispatched.append(Dispatch(dialogue_id, token))
    runs = Run.objects.filter(status=RunStatus.RUNNING)
    if run_ids is not None:
        runs = runs.filter(pk__in=run_ids)
    for run_id in runs.values_list("id", flat=True):
        dispatched.extend(run_dispatch(run_id=run_id))
    return dispatched


def run_take_over(*, run_id: int) -> list[Dispatch]:
    """For a process that drives a run alone (the CLI's in-process mode): every dialogue of the run that is in
    flight gets a new token held by the caller, and free slots are filled."""
    with transaction.atomic():
        until = timezone.now() + _queue_lease()
        taken = []
        for dialogue_id in Dialogue.objects.filter(run_id=run_id, status=DialogueStatus.RUNNING).values_list(
            "id", flat=True
        ):
            token = _token()
            Dialogue.objects.filter(pk=dialogue_id).update(lease_token=token, lease_until=until)
            taken.append(Dispatch(dialogue_id, token))
    return taken + run_dispatch(run_id=run_id)


def leases_expire_all() -> int:
    """Embedded mode, at start-up: nothing else can be stepping, and the in-memory queue is gone, so every
    lease is stale. Returns how many dialogues were in flight."""
    return Dialogue.objects.filter(status=DialogueStatus.RUNNING).update(lease_until=None)


def leases_extend(*, holders: dict[int, str]) -> int:
    """Heartbeat: extend the leases this process holds (dialogue id -> token)."""
    if not holders:
        return 0
    return Dialogue.objects.filter(pk__in=list(holders), lease_token__in=list(holders.values())).update(
        lease_until=timezone.now() + _step_lease()
    )


@dataclass
class Begun:
    state: DialogueState
    step_attempt: int
    token: str  # the execution token the save must present
    run_id: int
    backend: Backend
    reference: Backend | None = None  # an evaluation run's reference model plays the side the agent does not
    agent_side: int | None = None


@dataclass
class Skipped:
    reason: str
    waiting: bool = False  # parked until a person types the next action


def dialogue_step_begin(*, dialogue_id: int, token: str | None = None, human: bool = False) -> Begun | Skipped:
    """Take a dialogue for one step. With a token (dispatched work) the lease must be ours or stale; without
    one (a manual step) the dialogue must not be held by a live lease. Returns the state, or why not.

    Where a person plays a side: when the move is theirs and no action of theirs comes with the step (`human`),
    the dialogue is parked, paused, until they type it; a person's action when the move is not theirs is refused."""
    now = timezone.now()
    with transaction.atomic():
        try:
            dialogue = (
                Dialogue.objects.select_for_update(of=("self",))
                .select_related("run", "task__scenario", "task__agent1", "task__agent2")
                .get(pk=dialogue_id)
            )
        except Dialogue.DoesNotExist:
            return Skipped("no such dialogue")
        run = dialogue.run
        if dialogue.status not in ACTIVE and not (token is None and dialogue.status == DialogueStatus.PAUSED):
            return Skipped(f"the dialogue is {dialogue.status}")
        live = dialogue.lease_until is not None and dialogue.lease_until >= now
        if token is not None and dialogue.lease_token != token and live:
            return Skipped("another worker holds the lease")
        if token is None and dialogue.status == DialogueStatus.RUNNING and live:
            return Skipped("the dialogue is being stepped by a worker")
        if token is not None and run.status != RunStatus.RUNNING:
            if run.status == RunStatus.PAUSED:
                _park(dialogue, DialogueStatus.PAUSED)
            return Skipped(f"the run is {run.status}")
        state = None
        if dialogue.human_side is not None or human:
            state = dialogue_state(dialogue)
            move = plan(state)
            if move.kind == MoveKind.HUMAN and not human:
                _park(dialogue, DialogueStatus.PAUSED)
                return Skipped(f"waiting for a person: {move.reason}", waiting=True)
            if human and move.kind != MoveKind.HUMAN:
                return Skipped(f"it is not the person's turn: {move.reason}")
        execution = _token()
        dialogue.status = DialogueStatus.RUNNING
        dialogue.step_attempts += 1
        dialogue.lease_token = execution
        dialogue.lease_until = now + _step_lease()
        dialogue.started_at = dialogue.started_at or now
        dialogue.save(update_fields=["status", "step_attempts", "lease_token", "lease_until", "started_at"])
    return _begun(dialogue, state or dialogue_state(dialogue), execution)


def _begun(dialogue: Dialogue, state: DialogueState, token: str, step_attempt: int | None = None) -> Begun:
    run = dialogue.run
    return Begun(
        state,
        dialogue.step_attempts if step_attempt is None else step_attempt,
        token,
        dialogue.run_id,
        Backend.for_dialogue(dialogue),
        Backend.reference_of(run),
        dialogue.agent_side,
    )


# The next step of each dialogue whose step this process saved last, by the token that save handed out (a uuid:
# no other process can present it). The save began that step already, in its own transaction: the lease is the
# step's, the step attempt counted, and the state is the one just written, so the stepper goes on from here
# without reading anything back. A step that lands elsewhere (a takeover) begins from the rows.
_prepared: OrderedDict[str, tuple[int, Begun]] = OrderedDict()
_PREPARED_KEPT = 4096
_prepared_lock = threading.Lock()


def dialogue_step_prepared(*, dialogue_id: int, token: str) -> Begun | None:
    """The next step of a dialogue, begun by the save of its last step in this process, if there is one."""
    with _prepared_lock:  # saves put steps here from the database threads
        prepared = _prepared.get(token)
        if prepared is None or prepared[0] != dialogue_id:
            return None
        del _prepared[token]
    return prepared[1]


def _prepare(dialogue_id: int, begun: Begun) -> None:
    with _prepared_lock:
        _prepared[begun.token] = (dialogue_id, begun)
        while len(_prepared) > _PREPARED_KEPT:
            _prepared.popitem(last=False)


def _park(dialogue: Dialogue, status: str) -> None:
    dialogue.status = status
    dialogue.lease_token = ""
    dialogue.lease_until = None
    dialogue.save(update_fields=["status", "lease_token", "lease_until"])


def _call_rows(dialogue_id: int, step_attempt: int, calls: list[CallRecord]) -> list[LLMCall]:
    return [
        LLMCall(
            dialogue_id=dialogue_id,
            turn_index=c.turn_index,
            step_attempt=step_attempt,
            purpose=c.purpose,
            messages=c.messages,
            params=c.params,
            responses=c.responses,
            parsed=c.parsed,
            error=c.error,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            latency_ms=c.latency_ms,
            endpoint=c.endpoint,
            model=c.model,
            transport_retries=c.transport_retries,
            requests=c.requests,
        )
        for c in calls
    ]


def _step_counters(calls: list[CallRecord], result: StepResult | None = None) -> dict[str, Any]:
    """The dialogue's counters and flags a saved step raises (one UPDATE with the rest)."""
    changes: dict[str, Any] = {
        "tokens": F("tokens") + _tokens(calls),
        "calls_count": F("calls_count") + len(calls),
        "saved_steps": F("saved_steps") + 1,
    }
    turn = result.turn if result is not None else None
    if turn is not None:
        changes["turns_count"] = F("turns_count") + 1
        if turn.branch.value == Branch.SSI:
            changes["ssi_used"] = True
        if turn.branch.value == Branch.NSI:
            changes["nsi_used"] = True
    return changes


def _count_calls(dialogue: Dialogue, calls: list[CallRecord], result: StepResult | None = None) -> None:
    Dialogue.objects.filter(pk=dialogue.pk).update(**_step_counters(calls, result))


@dataclass
class StepSaved:
    saved: bool  # False: nothing written (a repeated step, a lost lease, a cancelled dialogue)
    finished: bool = False  # the dialogue is done (finished or failed): its slot is free, dispatch the run
    next_token: str | None = None  # step again with this token
    reason: str = ""
    waiting: bool = False  # the next move is a person's: parked until they type it


def dialogue_step_save(
    *,
    dialogue_id: int,
    step_attempt: int,
    result: StepResult,
    token: str,
    manual: bool = False,
    author_id: int | None = None,
    begun: Begun | None = None,
) -> StepSaved:
    """Write one step: the turn, its rating and its LLM calls, in one transaction, if `token` (from
    dialogue_step_begin) still holds the lease. Finishes the dialogue (and resolves the task's attempts) when
    nothing is left to do; otherwise keeps it in flight with a new token, or, after a manual step, pauses it.
    With the step's `begun`, a step after which the engine goes on is written without reading anything first
    (on PostgreSQL in one statement)."""
    next_move = plan(result.state)
    going_on = not manual and next_move.kind not in (MoveKind.FINISH, MoveKind.HUMAN)
    try:
        done = _save_going_on(dialogue_id, begun, result, author_id) if going_on and begun is not None else None
        if done is None:
            with transaction.atomic():
                done = _save_step(dialogue_id, step_attempt, result, token, None if going_on else next_move, author_id)
        saved, following = done
    except IntegrityError:
        # The same turn (or rating) was written by an earlier run of this step: nothing to add.
        logger.info("dialogue %s: step already saved, skipping the repeat", dialogue_id)
        return StepSaved(saved=False, reason="this step was saved before")
    if following is not None:
        _prepare(dialogue_id, following)  # committed: the next step here starts from this
    return saved


def _save_step(
    dialogue_id: int, step_attempt: int, result: StepResult, token: str, stop: Move | None, author_id: int | None
) -> tuple[StepSaved, Begun | None]:
    """The full path: the dialogue read and locked first. `stop` is the move the dialogue ends or waits on (None:
    it goes on). Returns what was saved and, when the dialogue goes on, its next step, begun."""
    dialogue = Dialogue.objects.select_for_update(of=("self",)).select_related("run").get(pk=dialogue_id)
    if dialogue.status not in ACTIVE:
        return StepSaved(saved=False, reason=f"the dialogue is {dialogue.status}"), None
    if dialogue.lease_token != token:
        return StepSaved(saved=False, reason="the lease was taken over; this step's result is dropped"), None
    if stop is None:
        return _save_going_on(dialogue_id, _begun(dialogue, result.state, token, step_attempt), result, author_id)
    _write_step(dialogue, step_attempt, result, author_id)
    if stop.kind == MoveKind.FINISH:
        _dialogue_finish(dialogue, result.state, stop.end_reason.value, _step_counters(result.calls, result))
        return StepSaved(saved=True, finished=True), None
    _count_calls(dialogue, result.calls, result)
    # stepped by hand: it waits for the next "step"; or the next move is a person's: it waits for them
    _park(dialogue, DialogueStatus.PAUSED)
    return StepSaved(saved=True, waiting=stop.kind == MoveKind.HUMAN), None


def _save_going_on(
    dialogue_id: int, begun: Begun, result: StepResult, author_id: int | None
) -> tuple[StepSaved, Begun | None] | None:
    """A step after which the engine goes on (the common step), written without reading anything first: one
    conditional update hands the lease to a new token, counts the next step attempt, raises the counters and
    reads the run's status and budget, and the step's rows go in only if it matched. On PostgreSQL that is one
    statement (one round trip, atomic without a transaction around it); elsewhere it is the update and the
    inserts in one transaction. Returns the next step, begun, or None when the lease is not the step's any more
    (the full path says why). A run paused, cancelled or over its token budget keeps the step and parks the
    dialogue."""
    token = _token()
    branch = result.turn.branch.value if result.turn is not None else None
    update = [
        _tokens(result.calls),
        len(result.calls),
        1 if result.turn is not None else 0,
        branch == Branch.SSI,
        branch == Branch.NSI,
        token,
        connection.ops.adapt_datetimefield_value(timezone.now() + _step_lease()),
        dialogue_id,
        begun.token,
        *ACTIVE,
    ]
    rows = _step_rows(dialogue_id, begun.step_attempt, result, author_id)
    if connection.vendor == "postgresql" and rows.turn is not None and (rows.rating is None or rows.rates_its_turn):
        with _step_cursor() as cursor:
            cursor.execute(*_one_statement(update, rows))
            row = cursor.fetchone()
    else:
        with transaction.atomic(), _step_cursor() as cursor:
            cursor.execute(_step_update_sql(), update)
            row = cursor.fetchone()
            if row is not None:
                _write_rows(rows)
    if row is None:
        return None
    step_attempt, status, budget = row  # the run read without a lock: a pause shows at this step or the next
    if status == RunStatus.RUNNING and budget is not None:
        status = _run_check_budget(begun.run_id, budget)
    if status != RunStatus.RUNNING:  # the step is kept; the dialogue waits with its run, or ends with it
        parked = DialogueStatus.PAUSED if status == RunStatus.PAUSED else DialogueStatus.CANCELLED
        Dialogue.objects.filter(pk=dialogue_id).update(status=parked, lease_token="", lease_until=None)
        return StepSaved(saved=True, reason=f"the run is {status}"), None
    following = Begun(result.state, step_attempt, token, begun.run_id, begun.backend, begun.reference, begun.agent_side)
    return StepSaved(saved=True, next_token=token), following


@functools.cache
def _step_update_sql() -> str:
    """The common step's update of its dialogue (see _save_going_on), with the run's status and budget."""
    dialogues, runs = Dialogue._meta.db_table, Run._meta.db_table
    return (
        f"UPDATE {dialogues} SET tokens = tokens + %s, calls_count = calls_count + %s, "
        "saved_steps = saved_steps + 1, turns_count = turns_count + %s, ssi_used = (ssi_used OR %s), "
        "nsi_used = (nsi_used OR %s), step_attempts = step_attempts + 1, lease_token = %s, lease_until = %s "
        "WHERE id = %s AND lease_token = %s AND status IN (%s, %s) RETURNING step_attempts, "
        f"(SELECT status FROM {runs} WHERE {runs}.id = {dialogues}.run_id) AS run_status, "
        f"(SELECT token_budget FROM {runs} WHERE {runs}.id = {dialogues}.run_id) AS token_budget"
    )


def _tokens(calls: list[CallRecord]) -> int:
    return sum(c.prompt_tokens + c.completion_tokens for c in calls)


def run_tokens_used(run_id: int) -> int:
    """The tokens a run has used: the sum of its dialogues' counters. Counted from rows, never kept on the run:
    every step of every dialogue raising one shared run row serialised the saves of a whole run on its lock."""
    return Dialogue.objects.filter(run_id=run_id).aggregate(used=Sum("tokens"))["used"] or 0


def _run_check_budget(run_id: int, budget: int) -> str:
    """After a step of a run with a token budget: pause the run once the budget is reached. Returns its status."""
    used = run_tokens_used(run_id)
    if used < budget:
        return RunStatus.RUNNING
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.PAUSED, status_reason=f"token budget reached ({used:,} of {budget:,} tokens)"
    )
    return RunStatus.PAUSED


@dataclass
class StepRows:
    """The rows a step writes: its turn, its rating (of the turn `rated_index`; the rating's turn is set when it
    is written) and its LLM calls."""

    dialogue_id: int
    turn: Turn | None
    rating: StepRating | None
    rated_index: int | None
    calls: list[LLMCall]

    @property
    def rates_its_turn(self) -> bool:
        return self.turn is not None and self.rating is not None and self.turn.index == self.rated_index


def _step_rows(dialogue_id: int, step_attempt: int, result: StepResult, author_id: int | None = None) -> StepRows:
    turn_row = None
    if result.turn is not None:
        turn = result.turn
        turn_row = Turn(
            dialogue_id=dialogue_id,
            index=turn.index,
            speaker=turn.speaker,
            action_type=turn.action.action_type.value,
            argument=turn.action.argument,
            forced=turn.forced,
            branch=turn.branch.value,
            reason=turn.reason,
            nsi_step=turn.nsi_step.value if turn.nsi_step else "",
            proposal=turn.proposal.value if turn.proposal else "",
            draft=turn.draft,
            own_utility=turn.own_utility,
            other_utility=turn.other_utility,
            human=turn.human,
            author_id=author_id if turn.human else None,
        )
    rating_row = None
    if result.rating is not None:
        rating = result.rating
        rating_row = StepRating(
            dialogue_id=dialogue_id,
            samples=rating["samples"],
            rejected=rating["rejected"],
            requested=rating["requested"],
            valid=rating["valid"],
            goal_c=rating["goal_c"],
            goal_p=rating["goal_p"],
            terminate=rating["terminate"],
            closing=bool(rating.get("closing")),
        )
    return StepRows(
        dialogue_id, turn_row, rating_row, result.rating_index, _call_rows(dialogue_id, step_attempt, result.calls)
    )


def _write_step(dialogue: Dialogue, step_attempt: int, result: StepResult, author_id: int | None = None) -> None:
    """The step's rows: its turn, its rating and its LLM calls."""
    _write_rows(_step_rows(dialogue.pk, step_attempt, result, author_id))


def _write_rows(rows: StepRows) -> None:
    if rows.turn is not None:
        _insert([rows.turn])
    if rows.rating is not None:
        if rows.rates_its_turn:
            rows.rating.turn = rows.turn
        else:
            rows.rating.turn = Turn.objects.get(dialogue_id=rows.dialogue_id, index=rows.rated_index)
        _insert([rows.rating])
    _insert(rows.calls)


def _one_statement(update: list[Any], rows: StepRows) -> tuple[str, list[Any]]:
    """PostgreSQL: the common step's update and its rows as one statement: a turn, its rating if it has one, and
    the calls. Each model's rows come as one JSON parameter that PostgreSQL turns into rows of its table, so the
    statement is the same, and short, whatever the step wrote. The inserts select from the update, so they write
    nothing when it matched no row (the lease is not the step's)."""
    rows_json = [_json_values(rows.turn, Turn)]
    if rows.rating is not None:
        rows_json.append(_json_values(rows.rating, StepRating, but="turn"))
    rows_json.append([_json_values(call, LLMCall) for call in rows.calls])
    return _one_statement_sql(rated=rows.rating is not None), [*update, *map(_dumps, rows_json)]


def _json_values(row: Model, model: type[Model], but: str = "") -> dict[str, Any]:
    """A new row's fields by column, prepared as the ORM prepares them; a JSON field's value as it is."""
    values = {}
    for f in _insert_fields(model, but):
        value = f.pre_save(row, True)
        values[f.column] = value if isinstance(f, JSONField) else f.get_db_prep_save(value, connection)
    return values


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@functools.cache
def _one_statement_sql(rated: bool) -> str:
    """The statement of _one_statement, for a turn with or without its rating."""
    quote = connection.ops.quote_name

    def insert(model: type[Model], source: str, records: str, but: str = "", key: str = "") -> str:
        table, fields = quote(model._meta.db_table), _insert_fields(model, but)
        columns = [quote(f.column) for f in fields]
        targets = [quote(model._meta.get_field(but).column), *columns] if but else columns
        selected = [key, *(f"x.{c}" for c in columns)] if key else [f"x.{c}" for c in columns]
        return (
            f"INSERT INTO {table} ({', '.join(targets)}) SELECT {', '.join(selected)} "
            f"FROM {source}, {records}(NULL::{table}, %s::jsonb) AS x"
        )

    parts = [
        f"WITH d AS ({_step_update_sql()})",
        f", t AS ({insert(Turn, 'd', 'jsonb_populate_record')} RETURNING id)",
    ]
    if rated:
        parts.append(f", r AS ({insert(StepRating, 't', 'jsonb_populate_record', but='turn', key='t.id')})")
    parts.append(f", c AS ({insert(LLMCall, 'd', 'jsonb_populate_recordset')})")
    parts.append(" SELECT step_attempts, run_status, token_budget FROM d")
    return "".join(parts)


@contextlib.contextmanager
def _step_cursor() -> Iterator[Any]:
    """A cursor for the statements every step runs (in the caller's transaction, if any). On PostgreSQL it binds
    its parameters on the server (Django's cursors quote them into the text client-side, a cost for a step's long
    prompts), and psycopg prepares a statement once it was run a few times (OMEGA_DB_PREPARED_STATEMENTS), so
    PostgreSQL stops parsing and planning the same few statements over and over. Database errors are Django's,
    as from any cursor."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _insert(rows: list[Model]) -> None:
    """INSERT rows of one model, each field prepared as the ORM prepares it. A step writes a few rows and writes
    them often: the ORM's per-save machinery (signals, the compiler) was a good part of a step's CPU, and nothing
    listens to these saves. The statement is the same for every row, so the driver keeps it parsed (and, on
    PostgreSQL, prepared). One row gets its id back; several go in one batch (psycopg pipelines it into one
    round trip) without their ids, which no caller needs."""
    if not rows:
        return
    model = type(rows[0])
    fields = _insert_fields(model)
    sql, returning = _insert_sql(model)
    params = [_prepared_values(row, fields) for row in rows]
    with _step_cursor() as cursor:
        if len(rows) > 1:
            cursor.executemany(sql, params)
            return
        cursor.execute(returning, params[0])
        (rows[0].pk,) = cursor.fetchone()
    rows[0]._state.adding, rows[0]._state.db = False, connection.alias


def _prepared_values(row: Model, fields: list[Any]) -> list[Any]:
    return [f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields]


@functools.cache
def _insert_fields(model: type[Model], but: str = "") -> list[Any]:
    """The fields a new row of `model` is written with: all but its key (and the field named `but`)."""
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name != but]


@functools.cache
def _insert_sql(model: type[Model]) -> tuple[str, str]:
    """A model's INSERT, and the INSERT that returns the key: built once per model."""
    meta = model._meta
    fields = _insert_fields(model)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    return sql, f"{sql} RETURNING {quote(meta.pk.column)}"


def _outcome(dialogue: Dialogue) -> AttemptOutcome:
    return AttemptOutcome(
        index=dialogue.attempt,
        final_goal_c=dialogue.final_goal_c,
        final_goal_p=dialogue.final_goal_p,
        nsi_used=dialogue.nsi_used,
        both_left=dialogue.end_reason == "both_left",
    )


def _dialogue_finish(dialogue: Dialogue, state: DialogueState, end_reason: str, counters: dict[str, Any]) -> None:
    """The last step's save: the step's counters (`_step_counters`) raised and the dialogue finished in one update,
    then its task's attempts resolved."""
    final = state.final_rating()
    dialogue.final_goal_c = None if final is None else final["goal_c"]
    dialogue.final_goal_p = None if final is None else final["goal_p"]
    dialogue.nsi_used = state.nsi_used
    dialogue.end_reason = end_reason
    config = dialogue_config(dialogue)
    outcome = _outcome(dialogue)
    dialogue.filter_passed = passes_filter(outcome, config)
    dialogue.filter_note = filter_explanation(outcome, config)
    dialogue.status = DialogueStatus.FINISHED
    dialogue.finished_at = timezone.now()
    dialogue.lease_token, dialogue.lease_until = "", None
    finished = ["final_goal_c", "final_goal_p", "nsi_used", "end_reason", "filter_passed", "filter_note", "status"]
    finished += ["finished_at", "lease_token", "lease_until"]
    # the counters go up with F(), never written back from this (stale) instance
    Dialogue.objects.filter(pk=dialogue.pk).update(**counters, **{name: getattr(dialogue, name) for name in finished})
    if not dialogue.run.is_fork:  # a fork is an experiment: no regeneration, nothing kept for a corpus
        _attempts_resolve(dialogue, config)


def _attempts_resolve(dialogue: Dialogue, config: RunConfig) -> None:
    """After an attempt ends: keep it if it passes; otherwise start the next attempt, or, when all attempts are
    used, keep the best (highest final goal_c, then goal_p, then the earliest)."""
    siblings = list(
        Dialogue.objects.filter(run_id=dialogue.run_id, task_id=dialogue.task_id)
        .only("attempt", "status", "kept", "final_goal_c", "final_goal_p", "nsi_used", "end_reason")
        .order_by("attempt")
    )
    if dialogue.filter_passed:
        _keep(siblings, dialogue.attempt)
        return
    # the attempt in hand did not pass (it failed the filter or the step failed)
    if dialogue.attempt + 1 < config.attempts:
        if not any(s.attempt == dialogue.attempt + 1 for s in siblings):
            _new_dialogue(dialogue.run, dialogue.task, dialogue.attempt + 1, config).save()
        return
    finished = [s for s in siblings if s.status == DialogueStatus.FINISHED]
    _keep(siblings, choose_kept([_outcome(s) for s in finished], config))


def _keep(siblings: list[Dialogue], attempt: int | None) -> None:
    for sibling in siblings:
        kept = sibling.attempt == attempt
        if sibling.kept != kept:
            Dialogue.objects.filter(pk=sibling.pk).update(kept=kept)


def dialogue_fail(
    *, dialogue_id: int, step_attempt: int, reason: str, calls: list[CallRecord], token: str
) -> StepSaved:
    """The engine gave up on a step: keep the calls it made (they show why) and mark the dialogue failed."""
    with transaction.atomic():
        dialogue = Dialogue.objects.select_for_update(of=("self",)).select_related("run").get(pk=dialogue_id)
        if dialogue.status not in ACTIVE or dialogue.lease_token != token:
            return StepSaved(saved=False, reason="the dialogue moved on without this step")
        _insert(_call_rows(dialogue_id, step_attempt, calls))
        _count_calls(dialogue, calls)
        dialogue.status = DialogueStatus.FAILED
        dialogue.failure_reason = reason
        dialogue.finished_at = timezone.now()
        dialogue.nsi_used = dialogue.turns.filter(branch=Branch.NSI).exists()
        dialogue.lease_token, dialogue.lease_until = "", None
        dialogue.save(
            update_fields=["status", "failure_reason", "finished_at", "nsi_used", "lease_token", "lease_until"]
        )
        # a failed attempt counts as one that did not pass: the next attempt starts, or the best is kept
        if not dialogue.run.is_fork:
            _attempts_resolve(dialogue, dialogue_config(dialogue))
        return StepSaved(saved=True, finished=True)


# --- pause, resume, cancel ---------------------------------------------------------------------------------


@transaction.atomic
def run_pause(*, run_id: int, reason: str = "paused by a user") -> Run:
    """Stop dispatching; dialogues in flight finish the step they are on, then wait."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.status == RunStatus.RUNNING:
        run.status, run.status_reason = RunStatus.PAUSED, reason
        run.save(update_fields=["status", "status_reason"])
    return run


def run_resume(*, run_id: int, token_budget: int | None = None) -> list[Dispatch]:
    """Go on: paused dialogues become pending again and are dispatched. A new budget may be given."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.PAUSED:
            return []
        if token_budget is not None:
            run.token_budget = token_budget
        used = run_tokens_used(run.pk)
        if run.token_budget is not None and used >= run.token_budget:
            raise ValueError(
                f"the run has used {used:,} of its {run.token_budget:,} token budget; give a larger budget"
            )
        run.status, run.status_reason = RunStatus.RUNNING, ""
        run.save(update_fields=["status", "status_reason", "token_budget"])
        run.dialogues.filter(status=DialogueStatus.PAUSED).update(status=DialogueStatus.PENDING)
    return run_dispatch(run_id=run_id)


@transaction.atomic
def run_cancel(*, run_id: int) -> Run:
    """Stop for good: unfinished dialogues are cancelled; a step in flight is dropped when it tries to save."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.status in (RunStatus.RUNNING, RunStatus.PAUSED):
        run.status, run.status_reason = RunStatus.CANCELLED, "cancelled by a user"
        run.save(update_fields=["status", "status_reason"])
        run.dialogues.filter(status__in=UNFINISHED).update(
            status=DialogueStatus.CANCELLED, lease_token="", lease_until=None
        )
    return run


@transaction.atomic
def dialogue_pause(*, dialogue_id: int) -> Dialogue:
    dialogue = Dialogue.objects.select_for_update().get(pk=dialogue_id)
    if dialogue.status in ACTIVE:
        _park(dialogue, DialogueStatus.PAUSED)  # a step in flight is dropped when it tries to save
    return dialogue


def dialogue_resume(*, dialogue_id: int) -> list[Dispatch]:
    with transaction.atomic():
        dialogue = Dialogue.objects.select_for_update().get(pk=dialogue_id)
        if dialogue.status != DialogueStatus.PAUSED:
            return []
        dialogue.status = DialogueStatus.PENDING
        dialogue.save(update_fields=["status"])
    return run_dispatch(run_id=dialogue.run_id)


@transaction.atomic
def dialogue_cancel(*, dialogue_id: int) -> Dialogue:
    dialogue = Dialogue.objects.select_for_update().get(pk=dialogue_id)
    if dialogue.status in UNFINISHED:
        _park(dialogue, DialogueStatus.CANCELLED)
    return dialogue


def run_refresh_status(*, run_id: int) -> str:
    """A run is finished when none of its dialogues is pending, running or paused."""
    run = Run.objects.get(pk=run_id)
    if run.status == RunStatus.RUNNING and not run.dialogues.filter(status__in=UNFINISHED).exists():
        _finish(run.pk)
        return RunStatus.FINISHED
    return run.status


def _finish(run_id: int) -> None:
    """The run is over: its pages hear it once the change is committed (the last step's own announcement may
    have gone out before, showing it still running)."""
    from dialogues import events

    Run.objects.filter(pk=run_id).update(status=RunStatus.FINISHED)
    events.run_changed(run_id)
