"""Which dialogues a corpus holds: its filters, its manual includes and excludes, and the overrides that must be
recorded before eval-split or simulated dialogues may enter a training corpus.

A dialogue's **verdict** is the curator's adjudication when there is one; otherwise the majority of the submitted
decisions (a tie, or none, is no verdict). "Accepted only" keeps dialogues whose verdict is accept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from dialogues.annotation.models import Adjudication, Decision, DialogueAnnotation, TurnAnnotation
from dialogues.library.models import Split
from dialogues.runs.models import Dialogue, DialogueStatus, RunKind, RunStatus, Turn


@dataclass(frozen=True)
class CorpusFilters:
    runs: list[int] = field(default_factory=list)  # empty: every generation and imported run
    variants: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # task external ids or scenario codenames
    split: str = Split.TRAIN.value  # "train", "eval" or "" (both)
    kept_only: bool = True
    passed_only: bool = True
    goal_min: float | None = None
    goal_max: float | None = None
    accepted_only: bool = False
    exclude_labels: list[int] = field(default_factory=list)  # drop dialogues with a turn carrying one of these
    exclude_simulated: bool = True
    exclude_human_turns: bool = True  # no training record for a turn a person typed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CorpusFilters:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


OVERRIDE_KINDS = {
    "eval_split": "tasks of the eval split (meant for evaluation, not training)",
    "simulated": "dialogues written by the simulated expert (not language-model data)",
}


def verdicts(dialogue_ids: list[int]) -> dict[int, str]:
    """accept / reject / needs_review per dialogue: the adjudication, else the strict majority of submitted
    decisions."""
    result = dict(Adjudication.objects.filter(dialogue_id__in=dialogue_ids).values_list("dialogue_id", "decision"))
    votes: dict[int, Counter] = {}
    for dialogue_id, decision in (
        DialogueAnnotation.objects.filter(dialogue_id__in=dialogue_ids, submitted_at__isnull=False)
        .exclude(decision="")
        .values_list("dialogue_id", "decision")
    ):
        votes.setdefault(dialogue_id, Counter())[decision] += 1
    for dialogue_id, counter in votes.items():
        if dialogue_id in result:
            continue
        (top, n), *rest = counter.most_common()
        if not rest or rest[0][1] < n:
            result[dialogue_id] = top
    return result


def _accepted_q() -> Q:
    adjudicated = Adjudication.objects.filter(dialogue=OuterRef("pk"))
    accepted_by_curator = Exists(adjudicated.filter(decision=Decision.ACCEPT))
    return accepted_by_curator | (~Exists(adjudicated) & Q(pk__in=_majority_accepted_ids()))


def _majority_accepted_ids() -> list[int]:
    ids = list(
        DialogueAnnotation.objects.filter(submitted_at__isnull=False, decision=Decision.ACCEPT)
        .values_list("dialogue_id", flat=True)
        .distinct()
    )
    return [pk for pk, verdict in verdicts(ids).items() if verdict == Decision.ACCEPT]


def _filter_steps(filters: CorpusFilters) -> list[tuple[str, Any]]:
    """The filters that are on, in the order they are applied, each as (what it keeps, queryset -> queryset).
    `filtered` applies them; `funnel` counts what each one removed: one list, so the two always agree."""
    steps: list[tuple[str, Any]] = []
    if filters.runs:
        steps.append(
            (f"runs {', '.join(f'#{r}' for r in filters.runs)}", lambda qs: qs.filter(run_id__in=filters.runs))
        )
    if filters.variants:
        steps.append(
            (f"variants {', '.join(filters.variants)}", lambda qs: qs.filter(run__variant__in=filters.variants))
        )
    if filters.tasks:
        steps.append(
            (
                f"tasks {', '.join(filters.tasks)}",
                lambda qs: qs.filter(
                    Q(task__external_id__in=filters.tasks) | Q(task__scenario__codename__in=filters.tasks)
                ),
            )
        )
    if filters.split:
        steps.append((f"{filters.split} split only", lambda qs: qs.filter(task__split=filters.split)))
    if filters.kept_only:
        steps.append(("kept attempts only", lambda qs: qs.filter(kept=True)))
    if filters.passed_only:
        steps.append(("passed the filter only", lambda qs: qs.filter(filter_passed=True)))
    if filters.goal_min is not None:
        steps.append((f"final goal_c ≥ {filters.goal_min:g}", lambda qs: qs.filter(final_goal_c__gte=filters.goal_min)))
    if filters.goal_max is not None:
        steps.append((f"final goal_c ≤ {filters.goal_max:g}", lambda qs: qs.filter(final_goal_c__lte=filters.goal_max)))
    if filters.accepted_only:
        steps.append(("accepted only", lambda qs: qs.filter(_accepted_q())))
    if filters.exclude_labels:
        labelled = TurnAnnotation.objects.filter(dialogue=OuterRef("pk"), labels__in=filters.exclude_labels)
        steps.append(("no turn with an excluded label", lambda qs: qs.exclude(Exists(labelled))))
    if filters.exclude_simulated:
        steps.append(("simulated dialogues excluded", lambda qs: qs.filter(simulated=False)))
    return steps


def filtered(filters: CorpusFilters) -> QuerySet[Dialogue]:
    """The dialogues the filters pick (before manual includes and excludes). Forks are never corpus."""
    qs = corpus_candidates()
    for _label, step in _filter_steps(filters):
        qs = step(qs)
    return qs


@dataclass(frozen=True)
class FunnelStep:
    label: str
    removed: int
    left: int


def funnel(filters: CorpusFilters) -> tuple[int, list[FunnelStep]]:
    """How many finished corpus candidates there are, and what each filter (in order) removed from what was left:
    the explanation of a count, above all of a count of zero."""
    qs = corpus_candidates()
    start = before = qs.count()
    steps = []
    for label, step in _filter_steps(filters):
        qs = step(qs)
        left = qs.count()
        steps.append(FunnelStep(label, before - left, left))
        before = left
    return start, steps


def corpus_candidates() -> QuerySet[Dialogue]:
    """Dialogues a corpus may hold: finished, of generation runs or of imported runs whose import has finished
    (forks are experiments, never training data)."""
    return Dialogue.objects.filter(
        status=DialogueStatus.FINISHED, run__kind__in=[RunKind.GENERATION, RunKind.IMPORTED]
    ).exclude(run__status=RunStatus.IMPORTING)


def selected(filters: CorpusFilters, includes: list[int], excludes: list[int]) -> QuerySet[Dialogue]:
    """Filters, plus dialogues added by hand (corpus candidates only), minus those removed by hand."""
    chosen = filtered(filters)
    if includes:
        extra = corpus_candidates().filter(pk__in=includes)
        chosen = Dialogue.objects.filter(Q(pk__in=chosen.values("pk")) | Q(pk__in=extra.values("pk")))
    if excludes:
        chosen = chosen.exclude(pk__in=excludes)
    return chosen.order_by("id")


@dataclass(frozen=True)
class Counts:
    dialogues: int
    tasks: int
    runs: int
    turns: int
    records: int  # training records (one per agent action, human turns excluded when asked)
    eval_split: int
    simulated: int
    human_turns: int

    def needs(self) -> list[str]:
        """The overrides this selection needs before it can be exported."""
        return [kind for kind, n in (("eval_split", self.eval_split), ("simulated", self.simulated)) if n]


def counts(filters: CorpusFilters, includes: list[int], excludes: list[int]) -> Counts:
    chosen = selected(filters, includes, excludes)
    ids = chosen.values("pk")
    turns = Turn.objects.filter(dialogue_id__in=ids)
    total_turns = turns.count()
    human = turns.filter(human=True).count()
    return Counts(
        dialogues=chosen.count(),
        tasks=chosen.values("task_id").distinct().count(),
        runs=chosen.values("run_id").distinct().count(),
        turns=total_turns,
        records=total_turns - (human if filters.exclude_human_turns else 0),
        eval_split=chosen.filter(task__split=Split.EVAL).count(),
        simulated=chosen.filter(simulated=True).count(),
        human_turns=human,
    )


def record_turns(*, exclude_human_turns: bool = True) -> Q:
    """The turns an export writes as training records (`formats/base.py` trainable_turns, corrections applied):
    one per agent action, leave included, except an action a person typed (when excluded, the default) and a
    side whose goal is unknown (a task rebuilt from an imported corpus). A filter on Turn."""
    known_goal = (Q(speaker=0) & ~Q(dialogue__task__scenario__agent1_goal="")) | (
        Q(speaker=1) & ~Q(dialogue__task__scenario__agent2_goal="")
    )
    return known_goal & Q(human=False) if exclude_human_turns else known_goal


def missing_overrides(needed: list[str], overrides: list[dict[str, Any]]) -> list[str]:
    recorded = {o.get("kind") for o in overrides if o.get("reason")}
    return [kind for kind in needed if kind not in recorded]
