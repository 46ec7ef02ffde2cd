"""Experiments: fork a dialogue from any turn with changed settings, alone or as a counterfactual batch.

A fork is a new dialogue in a fork run of its own. It shares its parent's turns 0..k: they are copied with their
step ratings and marked `inherited` (the parent is never touched), so the engine reads the fork exactly as it
reads any dialogue and the fork's own turns start at k+1. A closing rating is not copied: it was taken because the
parent ended there, and the fork goes on. The LLM calls stay with the parent; the fork counts only its own.

What the fork changes is recorded on it (`changes`: the seed, the served model, configuration values, the side a
person plays, the prompt set) and applied on top of the parent's settings (`dialogue_config`, `dialogue_prompt_set`),
so every decision from turn k+1 uses them. Without changes a fork replays the parent: the same seeds give the same
requests.

Pages fork with `dialogue_fork_start`, which also starts the fork run once committed; the `fork` command drives
or enqueues the run itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction

from dialogues.engine.config import RunConfig
from dialogues.engine.prompts import PromptSet
from dialogues.runs.attempts import dialogue_seed
from dialogues.runs.models import Branch, Dialogue, DialogueStatus, Run, RunKind, StepRating, Turn
from dialogues.runs.selectors import dialogue_config, dialogue_prompt_set
from dialogues.runs.starting import run_start


@dataclass(frozen=True)
class ForkSettings:
    """What a fork changes. Empty values keep the parent's."""

    seed: int | None = None
    model: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # RunConfig fields and their new values
    human_side: int | None = None
    prompt_set: PromptSet | None = None  # another prompt set (None: the parent's)

    def as_changes(self) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if self.seed is not None:
            changes["seed"] = self.seed
        if self.model:
            changes["model"] = self.model
        if self.config:
            changes["config"] = dict(self.config)
        if self.human_side is not None:
            changes["human_side"] = self.human_side
        if self.prompt_set is not None:
            changes["prompt_set"] = {"name": self.prompt_set.name, "version": self.prompt_set.version}
        return changes


def fork_config(parent: Dialogue, settings: ForkSettings) -> RunConfig:
    """The configuration the fork will run with. Raises ValueError naming what is invalid."""
    config = dialogue_config(parent)
    changes = dict(settings.config)
    if "sampling" in changes:
        changes["sampling"] = {**config.to_json()["sampling"], **changes["sampling"]}
    return RunConfig.from_json({**config.to_json(), **changes, "model": settings.model or config.model})


@dataclass(frozen=True)
class Arm:
    label: str  # "A" or "B" in a batch, "" for a single fork
    settings: ForkSettings


def dialogue_fork(
    *,
    parent_id: int,
    turn: int | None,
    arms: list[Arm],
    seeds: list[int | None],
    created_by: Any,
    start_paused: bool = False,
    name: str = "",
) -> Run:
    """Fork `parent` after its turn `turn` (None: from the start, sharing nothing) once per (arm, seed).

    A single fork is one arm with one seed (None keeps the arm's seed, or the parent's). A counterfactual batch is
    two arms with the same N seeds, so arm A's i-th fork and arm B's i-th fork differ only in the settings."""
    with transaction.atomic():
        parent = Dialogue.objects.select_related("run", "task").select_for_update(of=("self",)).get(pk=parent_id)
        if parent.run.is_imported:
            raise ValueError(
                f"dialogue #{parent.pk} was imported: it has no run configuration or strategy data to go on from"
            )
        shared = list(
            Turn.objects.filter(dialogue=parent, index__lte=turn if turn is not None else -1)
            .select_related("rating")
            .order_by("index")
        )
        if turn is not None and (turn < 0 or len(shared) != turn + 1):
            raise ValueError(f"dialogue #{parent.pk} has no turn {turn} (it has {parent.turns_count} turns)")
        for arm in arms:
            fork_config(parent, arm.settings)  # invalid settings fail here, before anything is written
            side = arm.settings.human_side
            if side is not None and side not in (0, 1):
                raise ValueError("the side a person plays is 0 (agent 1) or 1 (agent 2)")
        parent_config = dialogue_config(parent)
        parent_prompts = dialogue_prompt_set(parent)
        where = "the start" if turn is None else f"turn {turn}"
        run = Run.objects.create(
            name=name or _fork_name(parent, where, arms, seeds),
            kind=RunKind.FORK,
            created_by=created_by,
            variant=parent_config.variant.value,
            config=parent_config.to_json(),
            prompt_set_name=parent_prompts.name,
            prompt_set_version=parent_prompts.version,
            backend=parent.run.backend,
            model=parent_config.model or parent.run.model,
            endpoints=parent.run.endpoints,
            simulated=parent.run.simulated,
            seed=parent.seed,
            max_in_flight=parent.run.max_in_flight,
        )
        run.tasks.set([parent.task])
        forks = []
        for arm in arms:
            for seed in seeds:
                settings = arm.settings if seed is None else replace(arm.settings, seed=seed)
                forks.append(_fork_one(run, parent, turn, shared, settings, arm.label, len(forks), start_paused))
        return run


@transaction.atomic
def dialogue_fork_start(*, start_paused: bool = False, **fork: Any) -> Run:
    """A fork run (`dialogue_fork` with `fork`), started once committed unless it starts paused."""
    run = dialogue_fork(start_paused=start_paused, **fork)
    if not start_paused:
        run_start(run_id=run.pk)
    return run


def batch_seeds(parent: Dialogue, turn: int | None, base: int, count: int) -> list[int]:
    """N seeds for a counterfactual batch, drawn from `base`: the same for both arms (paired forks)."""
    return [dialogue_seed(base, f"fork:{parent.pk}:{turn}", i) for i in range(count)]


def _fork_name(parent: Dialogue, where: str, arms: list[Arm], seeds: list[int | None]) -> str:
    if len(arms) > 1:
        return f"Counterfactual: dialogue #{parent.pk} from {where}, {len(arms)} settings × {len(seeds)} seeds"
    return f"Fork of dialogue #{parent.pk} from {where}"


def _fork_one(
    run: Run,
    parent: Dialogue,
    turn: int | None,
    shared: list[Turn],
    settings: ForkSettings,
    arm: str,
    attempt: int,
    start_paused: bool,
) -> Dialogue:
    seed = settings.seed if settings.seed is not None else parent.seed
    branches = {t.branch for t in shared}
    fork = Dialogue.objects.create(
        run=run,
        task=parent.task,
        attempt=attempt,
        status=DialogueStatus.PAUSED if start_paused else DialogueStatus.PENDING,
        seed=seed,
        nsi_side=parent.nsi_side,
        simulated=parent.simulated,
        parent=parent,
        fork_turn=turn,
        changes=settings.as_changes(),
        arm=arm,
        human_side=settings.human_side,
        turns_count=len(shared),
        ssi_used=Branch.SSI in branches,
        nsi_used=Branch.NSI in branches,
    )
    copies = Turn.objects.bulk_create(
        [_copy(t, skip={"id", "created_at"}, dialogue=fork, inherited=True) for t in shared]
    )
    by_index = {t.index: t for t in copies}
    ratings = []
    for t in shared:
        rating = _rating_of(t)
        if rating is None or rating.closing:
            continue  # a closing rating was taken because the parent ended here; the fork goes on
        ratings.append(_copy(rating, skip={"id"}, turn=by_index[t.index], dialogue=fork))
    StepRating.objects.bulk_create(ratings)
    return fork


def _copy(row: Any, *, skip: set[str], **values: Any) -> Any:
    """A new, unsaved row with every stored field of `row` except `skip`, with `values` set (a field added to the
    model later is copied too)."""
    left_out = skip | set(values)
    fields = {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields if f.name not in left_out}
    return type(row)(**fields, **values)


def _rating_of(turn: Turn) -> StepRating | None:
    try:
        return turn.rating
    except StepRating.DoesNotExist:
        return None
