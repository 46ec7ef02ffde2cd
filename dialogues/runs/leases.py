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

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dialogues.engine.plan import MoveKind, plan
from dialogues.engine.state import DialogueState
from dialogues.llm.backends import Backend
from dialogues.runs.models import Dialogue, DialogueStatus, RunStatus
from dialogues.runs.selectors import dialogue_state

logger = logging.getLogger(__name__)


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


ACTIVE = (DialogueStatus.PENDING, DialogueStatus.RUNNING)


UNFINISHED = (DialogueStatus.PENDING, DialogueStatus.RUNNING, DialogueStatus.PAUSED)


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
