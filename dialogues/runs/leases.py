"""Leases: who may step a dialogue now, and taking a dialogue for one step.

The database says what is in flight. A dispatched dialogue is `running` and holds a lease: a token and an expiry.
Whoever steps it must present the token (`dialogue_step_begin` checks it, counts the step attempt and reads the
state); while stepping, the holder extends the expiry (`leases_extend`, the heartbeat). If a worker dies, its
lease goes stale and the reconciler (runs/lifecycle.py) hands the dialogue to a new token, so the step in flight
is redone once.

A save that goes on hands the lease to the next step itself and keeps that step, begun, in this process
(`dialogue_step_prepare`), so the stepper goes on without reading anything back (`dialogue_step_prepared`).
"""

from __future__ import annotations

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


def leases_expire_all() -> int:
    """Embedded mode, at start-up: nothing else can be stepping, and the in-memory queue is gone, so every
    lease is stale. Returns how many dialogues were in flight."""
    return Dialogue.objects.filter(status=DialogueStatus.RUNNING).update(lease_until=None)


def leases_extend(*, holders: dict[int, str]) -> int:
    """Heartbeat: extend the leases this process holds (dialogue id -> token)."""
    if not holders:
        return 0
    return Dialogue.objects.filter(pk__in=list(holders), lease_token__in=list(holders.values())).update(
        lease_until=timezone.now() + step_lease()
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

    @classmethod
    def of(cls, dialogue: Dialogue, state: DialogueState, token: str, step_attempt: int | None = None) -> Begun:
        """The step of `dialogue` (its run loaded) from `state`, holding `token`."""
        return cls(
            state,
            dialogue.step_attempts if step_attempt is None else step_attempt,
            token,
            dialogue.run_id,
            Backend.for_dialogue(dialogue),
            Backend.reference_of(dialogue.run),
            dialogue.agent_side,
        )


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
                dialogue_park(dialogue, DialogueStatus.PAUSED)
            return Skipped(f"the run is {run.status}")
        state = None
        if dialogue.human_side is not None or human:
            state = dialogue_state(dialogue)
            move = plan(state)
            if move.kind == MoveKind.HUMAN and not human:
                dialogue_park(dialogue, DialogueStatus.PAUSED)
                return Skipped(f"waiting for a person: {move.reason}", waiting=True)
            if human and move.kind != MoveKind.HUMAN:
                return Skipped(f"it is not the person's turn: {move.reason}")
        execution = new_lease_token()
        dialogue.status = DialogueStatus.RUNNING
        dialogue.step_attempts += 1
        dialogue.lease_token = execution
        dialogue.lease_until = now + step_lease()
        dialogue.started_at = dialogue.started_at or now
        dialogue.save(update_fields=["status", "step_attempts", "lease_token", "lease_until", "started_at"])
    return Begun.of(dialogue, state or dialogue_state(dialogue), execution)


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


def dialogue_step_prepare(*, dialogue_id: int, begun: Begun) -> None:
    """Keep the next step of a dialogue, begun by the save that just committed, for this process's stepper."""
    with _prepared_lock:
        _prepared[begun.token] = (dialogue_id, begun)
        while len(_prepared) > _PREPARED_KEPT:
            _prepared.popitem(last=False)


def dialogue_park(dialogue: Dialogue, status: str) -> None:
    """Take a dialogue (locked by the caller) out of flight: `status` (paused, cancelled), no lease."""
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


def new_lease_token() -> str:
    """A new lease token: a uuid, so no other process can present it."""
    return uuid.uuid4().hex


def queue_lease() -> timedelta:
    """How long a dispatched dialogue may wait in the queue before its lease is stale."""
    return timedelta(seconds=settings.OMEGA_QUEUE_LEASE_SECONDS)


def step_lease() -> timedelta:
    """How long a step holds its lease between heartbeats."""
    return timedelta(seconds=settings.OMEGA_LEASE_SECONDS)
