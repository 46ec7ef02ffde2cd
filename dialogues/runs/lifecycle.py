"""A run's life: creating it with the first attempt of every task, dispatching dialogues up to its max_in_flight,
pausing, resuming and cancelling runs and dialogues, finishing a run, and taking over stale leases (the
reconciler). Each returns what it dispatched; the caller enqueues it (runs/starting.py does so after commit).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dialogues.engine.config import RunConfig
from dialogues.engine.prompts import PromptSet, builtin
from dialogues.library.models import Task
from dialogues.llm.backends import Backend
from dialogues.runs import events
from dialogues.runs.attempts import attempt_build
from dialogues.runs.leases import ACTIVE, UNFINISHED, Dispatch, dialogue_park, new_lease_token, queue_lease
from dialogues.runs.models import Dialogue, DialogueStatus, Run, RunKind, RunStatus
from dialogues.runs.steps import run_tokens_used

logger = logging.getLogger(__name__)


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
    server_profiles: list[dict[str, Any]] | None = None,
    prompt_set: PromptSet | None = None,
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
        prompt_set_name=(prompt_set or builtin()).name,
        prompt_set_version=(prompt_set or builtin()).version,
        backend=backend.kind,
        model=backend.model,
        endpoints=list(backend.base_urls),
        server_profiles=server_profiles or [],
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
    dialogues = [attempt_build(run, task, 0, config) for task in tasks]
    for dialogue in dialogues:
        dialogue.agent_side = (agent_sides or {}).get(dialogue.task.pk)
    if start_paused:
        for dialogue in dialogues:
            dialogue.status = DialogueStatus.PAUSED
    Dialogue.objects.bulk_create(dialogues, batch_size=500)
    return run


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
        until = timezone.now() + queue_lease()
        dispatched = []
        for dialogue_id in pending:
            token = new_lease_token()
            if Dialogue.objects.filter(pk=dialogue_id, status=DialogueStatus.PENDING).update(
                status=DialogueStatus.RUNNING, lease_token=token, lease_until=until
            ):
                dispatched.append(Dispatch(dialogue_id, token))
        if not dispatched and not dialogues.filter(status__in=UNFINISHED).exists():
            _finish(run_id)
        return dispatched


@transaction.atomic
def run_pause(*, run_id: int, reason: str = "paused by a user") -> Run:
    """Stop dispatching; dialogues in flight finish the step they are on, then wait."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if run.status == RunStatus.RUNNING:
        run.status, run.status_reason = RunStatus.PAUSED, reason
        run.save(update_fields=["status", "status_reason"])
    return run


def run_resume(*, run_id: int, token_budget: int | None = None) -> list[Dispatch]:
    """Go on: paused dialogues become pending again and are dispatched. A new budget may be given. A running run
    whose unfinished dialogues all wait for a step by hand (one that started paused) goes on the same way."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.status == RunStatus.RUNNING:
            # shown as paused when every unfinished dialogue waits for a step by hand: resuming lets them all run
            moving = run.dialogues.filter(status__in=(DialogueStatus.PENDING, DialogueStatus.RUNNING)).exists()
            if moving or not run.dialogues.filter(status=DialogueStatus.PAUSED).exists():
                return []
        elif run.status != RunStatus.PAUSED:
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
        dialogue_park(dialogue, DialogueStatus.PAUSED)  # a step in flight is dropped when it tries to save
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
        dialogue_park(dialogue, DialogueStatus.CANCELLED)
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
    Run.objects.filter(pk=run_id).update(status=RunStatus.FINISHED)
    events.run_changed(run_id)


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
        token = new_lease_token()
        taken = (
            Dialogue.objects.filter(pk=dialogue_id, status=DialogueStatus.RUNNING)
            .filter(Q(lease_until__lt=now) | Q(lease_until__isnull=True))
            .update(lease_token=token, lease_until=now + queue_lease())
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
        until = timezone.now() + queue_lease()
        taken = []
        for dialogue_id in Dialogue.objects.filter(run_id=run_id, status=DialogueStatus.RUNNING).values_list(
            "id", flat=True
        ):
            token = new_lease_token()
            Dialogue.objects.filter(pk=dialogue_id).update(lease_token=token, lease_until=until)
            taken.append(Dispatch(dialogue_id, token))
    return taken + run_dispatch(run_id=run_id)


def run_server_profiles_record(*, run_id: int, profiles: list[dict[str, Any]]) -> None:
    """Record what the run's servers can do (probed after the run was made: the benchmark command)."""
    Run.objects.filter(pk=run_id).update(server_profiles=profiles)
