"""Reads for annotation and curation: what one user sees of a dialogue's annotations (blind mode), the queue of
dialogues to annotate next, each annotator's progress, and agreement with its disagreements per run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from dialogues.annotation.agreement import Agreement, agreement
from dialogues.annotation.models import Adjudication, Correction, DialogueAnnotation, Label, TurnAnnotation
from dialogues.runs.models import Dialogue, DialogueStatus, Run, RunKind, Turn
from omega_web.roles import Capability, has_capability


def labels_in_use() -> list[Label]:
    """The active label set, in the order the form and the keys 1–9 follow."""
    return list(Label.objects.filter(active=True))


def sees_others(dialogue: Dialogue, user: Any) -> bool:
    """Blind mode: an annotator sees others' annotations of a dialogue only after submitting their own decision.
    Curators always see them (they adjudicate); without blind mode everyone does."""
    if not dialogue.run.blind_annotation or has_capability(user, Capability.CURATE):
        return True
    return DialogueAnnotation.objects.filter(dialogue=dialogue, annotator=user, submitted_at__isnull=False).exists()


@dataclass
class TurnPanel:
    turn: Turn
    mine: TurnAnnotation | None
    mine_labels: set[int]
    others: list[TurnAnnotation]  # empty while blind
    hidden: int  # others' annotations hidden by blind mode
    corrections: list[Correction] = field(default_factory=list)  # the history, when others are visible (or mine)
    values: dict[str, Any] = field(default_factory=dict)  # what its form shows (set by the view)


@dataclass
class DialoguePanel:
    dialogue: Dialogue
    labels: list[Label]
    turns: list[TurnPanel]
    mine: DialogueAnnotation | None
    others: list[DialogueAnnotation]
    hidden: int
    visible: bool
    adjudication: Adjudication | None
    can_adjudicate: bool


def dialogue_panel(
    dialogue: Dialogue, user: Any, *, only_turn: int | None = None, through: int | None = None
) -> DialoguePanel:
    """Everything `user` may see of the annotations of `dialogue` (or of one turn, `only_turn`, or of the turns up
    to index `through`)."""
    visible = sees_others(dialogue, user)
    turns = Turn.objects.filter(dialogue=dialogue).order_by("index")
    if only_turn is not None:
        turns = turns.filter(pk=only_turn)
    if through is not None:
        turns = turns.filter(index__lte=through)
    turns = list(turns)
    shown = [turn.pk for turn in turns]  # only these turns' annotations are read (none for the decision panel)
    annotations = (
        TurnAnnotation.objects.filter(turn_id__in=shown)
        .select_related("annotator")
        .prefetch_related("labels")
        .order_by("annotator__username")
    )
    by_turn: dict[int, list[TurnAnnotation]] = defaultdict(list)
    for row in annotations:
        by_turn[row.turn_id].append(row)
    history: dict[int, list[Correction]] = defaultdict(list)
    for correction in Correction.objects.filter(turn_id__in=shown).select_related("author"):
        if visible or correction.author_id == user.pk:
            history[correction.turn_id].append(correction)
    panels = []
    for turn in turns:
        rows = by_turn.get(turn.pk, [])
        mine = next((r for r in rows if r.annotator_id == user.pk), None)
        others = [r for r in rows if r.annotator_id != user.pk]
        panels.append(
            TurnPanel(
                turn=turn,
                mine=mine,
                mine_labels={label.pk for label in mine.labels.all()} if mine else set(),
                others=others if visible else [],
                hidden=0 if visible else len(others),
                corrections=history.get(turn.pk, []),
            )
        )
    decisions = list(DialogueAnnotation.objects.filter(dialogue=dialogue).select_related("annotator"))
    mine = next((d for d in decisions if d.annotator_id == user.pk), None)
    others = [d for d in decisions if d.annotator_id != user.pk]
    return DialoguePanel(
        dialogue=dialogue,
        labels=labels_in_use(),
        turns=panels,
        mine=mine,
        others=others if visible else [],
        hidden=0 if visible else len(others),
        visible=visible,
        adjudication=Adjudication.objects.filter(dialogue=dialogue).select_related("curator").first(),
        can_adjudicate=has_capability(user, Capability.CURATE),
    )


# --- the queue and progress -------------------------------------------------------------------------------


def annotatable(run_id: int | None = None) -> QuerySet[Dialogue]:
    """Finished dialogues of generation runs (forks are experiments, not corpus)."""
    dialogues = Dialogue.objects.filter(status=DialogueStatus.FINISHED, run__kind=RunKind.GENERATION)
    return dialogues.filter(run_id=run_id) if run_id else dialogues


def next_for(user: Any, *, run_id: int | None = None, kept_only: bool = True) -> Dialogue | None:
    """The next dialogue for `user`: one they started but did not submit; else one that still lacks annotators
    (fewest submitted first, then the oldest), that they have not submitted."""
    pool = annotatable(run_id)
    if kept_only:
        pool = pool.filter(kept=True)
    mine = DialogueAnnotation.objects.filter(dialogue=OuterRef("pk"), annotator=user)
    started = pool.filter(Exists(mine.filter(submitted_at__isnull=True))).order_by("id").first()
    if started is not None:
        return started
    candidates = (
        pool.exclude(Exists(mine.filter(submitted_at__isnull=False)))
        .annotate(submitted=Count("annotations", filter=Q(annotations__submitted_at__isnull=False)))
        .filter(submitted__lt=F("run__annotators_target"))
        .order_by("submitted", "id")
    )
    return candidates.first()


def nothing_left_reason(user: Any, *, run_id: int | None = None) -> str:
    """Why `next_for` found nothing, in the queue's words: no dialogue yet, every dialogue has its annotators, or
    the ones still short of annotators are all ones this user has submitted (they wait for others)."""
    pool = annotatable(run_id).filter(kept=True)
    if not pool.exists():
        return "there is no finished dialogue to annotate here yet."
    short = pool.annotate(submitted=Count("annotations", filter=Q(annotations__submitted_at__isnull=False))).filter(
        submitted__lt=F("run__annotators_target")
    )
    waiting = short.count()
    if not waiting:
        return "every dialogue has all the annotators its run wants."
    if waiting == 1:
        return "you have submitted the one dialogue that still needs annotators; it waits for other annotators."
    return f"you have submitted all {waiting} dialogues that still need annotators; they wait for other annotators."


def progress(run: Run) -> dict[str, Any]:
    """Per annotator: decisions submitted and turns annotated in this run; overall: dialogues with enough
    annotators out of those to annotate."""
    pool = annotatable(run.pk).filter(kept=True)
    total = pool.count()
    complete = (
        pool.annotate(submitted=Count("annotations", filter=Q(annotations__submitted_at__isnull=False)))
        .filter(submitted__gte=run.annotators_target)
        .count()
    )
    decisions = (
        DialogueAnnotation.objects.filter(dialogue__run=run)
        .values("annotator__username")
        .annotate(
            submitted=Count("id", filter=Q(submitted_at__isnull=False)),
            started=Count("id", filter=Q(submitted_at__isnull=True)),
        )
        .order_by("annotator__username")
    )
    turns = dict(
        TurnAnnotation.objects.filter(dialogue__run=run)
        .values_list("annotator__username")
        .annotate(n=Count("id"))
        .order_by()
    )
    people = [
        {"name": row["annotator__username"], "submitted": row["submitted"], "started": row["started"],
         "turns": turns.get(row["annotator__username"], 0)}
        for row in decisions
    ]  # fmt: skip
    return {"total": total, "complete": complete, "target": run.annotators_target, "people": people}


# --- agreement and disagreements --------------------------------------------------------------------------


@dataclass
class LabelAgreement:
    label: Label
    result: Agreement
    used: int  # turns that got the label from at least one annotator


@dataclass
class RunAgreement:
    decisions: Agreement
    labels: list[LabelAgreement]
    disagreements: list[dict[str, Any]]  # dialogues whose submitted decisions differ
    label_disagreements: list[dict[str, Any]]  # turns where annotators differ on a label
    people: int = 0  # who submitted a decision in the run
    decided: int = 0  # dialogues with at least one submitted decision


def run_agreement(run: Run) -> RunAgreement:
    """Agreement among the submitted annotations of a run: on decisions (items: dialogues), and per label (items:
    turns of dialogues that two or more annotators submitted; a submitted annotator who did not put the label on a
    turn said it does not apply)."""
    submitted = list(
        DialogueAnnotation.objects.filter(dialogue__run=run, submitted_at__isnull=False)
        .exclude(decision="")
        .select_related("annotator", "dialogue__task__scenario")
    )
    decisions: dict[int, dict[str, str]] = defaultdict(dict)
    who: dict[int, set[int]] = defaultdict(set)
    dialogues: dict[int, Dialogue] = {}
    for row in submitted:
        decisions[row.dialogue_id][row.annotator.username] = row.decision
        who[row.dialogue_id].add(row.annotator_id)
        dialogues[row.dialogue_id] = row.dialogue
    shared = {d for d, people in who.items() if len(people) >= 2}
    adjudicated = dict(Adjudication.objects.filter(dialogue_id__in=shared).values_list("dialogue_id", "decision"))
    disagreements = [
        {"dialogue": dialogues[d], "decisions": sorted(decisions[d].items()), "adjudication": adjudicated.get(d)}
        for d in sorted(shared)
        if len(set(decisions[d].values())) > 1
    ]
    # labels: every turn of a shared dialogue, for every annotator who submitted it
    labels = list(Label.objects.all())
    put: dict[tuple[int, int], set[int]] = defaultdict(set)  # (turn, annotator) -> labels
    for turn_id, annotator_id, label_id in TurnAnnotation.objects.filter(dialogue_id__in=shared).values_list(
        "turn_id", "annotator_id", "labels"
    ):
        if label_id is not None:
            put[(turn_id, annotator_id)].add(label_id)
    names = {row.annotator_id: row.annotator.username for row in submitted}
    turns = list(Turn.objects.filter(dialogue_id__in=shared).values_list("pk", "dialogue_id", "index"))
    per_label = []
    label_disagreements = []
    for label in labels:
        ratings: dict[int, dict[str, bool]] = {}
        used = 0
        for turn_id, dialogue_id, index in turns:
            values = {names[a]: label.pk in put.get((turn_id, a), set()) for a in who[dialogue_id]}
            ratings[turn_id] = values
            if any(values.values()):
                used += 1
                if len(set(values.values())) > 1:
                    label_disagreements.append(
                        {
                            "dialogue": dialogues[dialogue_id],
                            "turn": index,
                            "label": label,
                            "with": sorted(n for n, v in values.items() if v),
                            "without": sorted(n for n, v in values.items() if not v),
                        }
                    )
        if used:
            per_label.append(LabelAgreement(label, agreement(ratings), used))
    decision_ratings = {d: decisions[d] for d in shared}
    people = len({row.annotator_id for row in submitted})
    return RunAgreement(
        agreement(decision_ratings), per_label, disagreements, label_disagreements, people, len(decisions)
    )
