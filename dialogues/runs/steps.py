"""Saving a step: the turn, its rating and its LLM calls in one short transaction, unique on (dialogue, turn
index) so a repeated step writes nothing twice, and only while the step still holds the dialogue's lease.

A step happens in three parts so that no database lock is held while the model thinks: `dialogue_step_begin`
(runs/leases.py), the engine's LLM calls (no transaction), and `dialogue_step_save` here. A step after which the
engine goes on (the common step) is written without reading anything first: one conditional update hands the lease
to the next step and raises the counters, and the step's rows go in only if it matched. On PostgreSQL that is one
statement (`_one_statement`); on SQLite it is the update and the inserts in one transaction (`_write_rows`). Both
write the rows that one builder makes (`_step_rows`). A step that ends or parks the dialogue, and a failed step
(`dialogue_fail`), take the full path: the dialogue read and locked first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import F, JSONField, Model, Sum
from django.utils import timezone

from dialogues.engine.plan import Move, MoveKind, plan
from dialogues.engine.stepper import CallRecord, StepResult
from dialogues.runs.attempts import attempts_resolve, dialogue_finish
from dialogues.runs.leases import (
    ACTIVE,
    Begun,
    dialogue_park,
    dialogue_step_prepare,
    new_lease_token,
    step_lease,
)
from dialogues.runs.models import Branch, Dialogue, DialogueStatus, LLMCall, Run, RunStatus, StepRating, Turn
from dialogues.runs.selectors import dialogue_config

logger = logging.getLogger(__name__)


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
            cached_tokens=c.cached_tokens,
            latency_ms=c.latency_ms,
            endpoint=c.endpoint,
            model=c.model,
            transport_retries=c.transport_retries,
            requests=c.requests,
            finish_reasons=c.finish_reasons,
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
        dialogue_step_prepare(
            dialogue_id=dialogue_id, begun=following
        )  # committed: the next step here starts from this
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
        return _save_going_on(dialogue_id, Begun.of(dialogue, result.state, token, step_attempt), result, author_id)
    _write_step(dialogue, step_attempt, result, author_id)
    if stop.kind == MoveKind.FINISH:
        dialogue_finish(dialogue, result.state, stop.end_reason.value, _step_counters(result.calls, result))
        return StepSaved(saved=True, finished=True), None
    _count_calls(dialogue, result.calls, result)
    # stepped by hand: it waits for the next "step"; or the next move is a person's: it waits for them
    dialogue_park(dialogue, DialogueStatus.PAUSED)
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
    token = new_lease_token()
    branch = result.turn.branch.value if result.turn is not None else None
    update = [
        _tokens(result.calls),
        len(result.calls),
        1 if result.turn is not None else 0,
        branch == Branch.SSI,
        branch == Branch.NSI,
        token,
        connection.ops.adapt_datetimefield_value(timezone.now() + step_lease()),
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
    following = replace(begun, state=result.state, step_attempt=step_attempt, token=token)
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
            returned=rating.get("returned"),
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
            attempts_resolve(dialogue, dialogue_config(dialogue))
        return StepSaved(saved=True, finished=True)
