"""Writes for annotation and curation: a turn's labels, quality, note and corrected text; a dialogue's decision and
its submission; a curator's adjudication; the label set.

Every row carries a `version`. A save names the version it was made from (0 for a new row); if the row moved on
in between (another tab, another curator), the save is refused with `Conflict`, which carries the row as it is
now, so the page can show both and nothing is lost. A corrected text is never written over the turn: the turn
keeps its original, and every corrected text ever saved is kept in `Correction` with its author, time and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dialogues.annotation.models import Adjudication, Correction, Decision, DialogueAnnotation, Label, TurnAnnotation
from dialogues.runs.models import Dialogue, Turn

MAX_NOTE = 4000


class Conflict(Exception):
    """The row changed since the form was loaded. `current` is the row as saved now (or None)."""

    def __init__(self, current: Any, message: str) -> None:
        super().__init__(message)
        self.current = current
        self.message = message


@dataclass(frozen=True)
class TurnAnnotationInput:
    labels: list[int] = field(default_factory=list)
    quality: int | None = None
    note: str = ""
    corrected_text: str = ""
    correction_reason: str = ""


ELSEWHERE = "in another tab or window"  # annotations are one person's own: a conflict is with themself


def _claim(model: Any, version: int, *, removed: str, raced: str, stale: str, create: dict, **lookup: Any) -> Any:
    """Inside a transaction: the row `lookup` names, locked, if it is still at `version` (0: there is none yet, and
    it is created here with `create`). Its version is raised for the save that follows; otherwise Conflict."""
    row = model.objects.select_for_update().filter(**lookup).first()
    if row is None:
        if version != 0:
            raise Conflict(None, removed)
        try:
            with transaction.atomic():
                return model.objects.create(**lookup, **create)
        except IntegrityError as lost:  # someone created it between the read and the write
            raise Conflict(model.objects.get(**lookup), raced) from lost
    if row.version != version:
        raise Conflict(row, stale)
    row.version += 1
    return row


def turn_annotation_save(*, turn_id: int, annotator: Any, data: TurnAnnotationInput, version: int) -> TurnAnnotation:
    """Save `annotator`'s annotation of a turn. Raises ValueError for bad input, Conflict for a stale version."""
    turn = Turn.objects.select_related("dialogue").get(pk=turn_id)
    labels = set(data.labels)
    known = set(Label.objects.filter(pk__in=labels, active=True).values_list("pk", flat=True))
    if labels - known:
        raise ValueError("unknown or retired label")
    if data.quality is not None and not 1 <= data.quality <= 5:
        raise ValueError("quality is 1 to 5")
    if len(data.note) > MAX_NOTE:
        raise ValueError(f"the note is longer than {MAX_NOTE:,} characters")
    corrected = data.corrected_text.strip()
    if corrected == turn.argument.strip():
        corrected = ""  # the same text is no correction
    reason = data.correction_reason.strip()
    if corrected and not reason:
        raise ValueError("say why the text is corrected (the reason is kept with the correction)")
    with transaction.atomic():
        row = _claim(
            TurnAnnotation,
            version,
            removed="this annotation was removed since you opened it",
            raced=f"you saved an annotation of this turn {ELSEWHERE} first",
            stale=f"you saved this annotation {ELSEWHERE} since you opened it here",
            create={"dialogue": turn.dialogue},
            turn=turn,
            annotator=annotator,
        )
        before = row.corrected_text
        row.quality = data.quality
        row.note = data.note.strip()
        row.corrected_text = corrected
        row.correction_reason = reason if corrected else ""
        row.save()
        row.labels.set(sorted(labels))
        if corrected != before:
            original = turn.argument
            Correction.objects.create(turn=turn, author=annotator, original=original, text=corrected, reason=reason)
    return row


def dialogue_annotation_save(
    *, dialogue_id: int, annotator: Any, decision: str, note: str, submit: bool, version: int
) -> DialogueAnnotation:
    """Save `annotator`'s decision on a dialogue; `submit` makes it final for blind mode (it can still change)."""
    if decision and decision not in Decision.values:
        raise ValueError(f"decision is one of {', '.join(Decision.values)}")
    if submit and not decision:
        raise ValueError("choose accept, reject or needs review before submitting")
    if len(note) > MAX_NOTE:
        raise ValueError(f"the note is longer than {MAX_NOTE:,} characters")
    dialogue = Dialogue.objects.get(pk=dialogue_id)
    with transaction.atomic():
        row = _claim(
            DialogueAnnotation,
            version,
            removed="this decision was removed since you opened it",
            raced=f"you saved a decision on this dialogue {ELSEWHERE} first",
            stale=f"you saved this decision {ELSEWHERE} since you opened it here",
            create={},
            dialogue=dialogue,
            annotator=annotator,
        )
        row.decision = decision
        row.note = note.strip()
        if submit and row.submitted_at is None:
            row.submitted_at = timezone.now()
        row.save()
    return row


def adjudicate(*, dialogue_id: int, curator: Any, decision: str, note: str, version: int) -> Adjudication:
    """The curator's authoritative decision. Two curators deciding at once: the second gets a Conflict."""
    if decision not in (Decision.ACCEPT, Decision.REJECT):
        raise ValueError("a curator's decision is accept or reject")
    dialogue = Dialogue.objects.get(pk=dialogue_id)
    with transaction.atomic():
        row = _claim(
            Adjudication,
            version,
            removed="the decision was removed since you opened it",
            raced="another curator decided on this dialogue first",
            stale="another curator changed the decision since you opened it",
            create={},
            dialogue=dialogue,
        )
        row.curator, row.decision, row.note = curator, decision, note.strip()
        row.save()
        return row


def label_save(
    *, label_id: int | None, name: str, description: str, position: int, active: bool, version: int
) -> Label:
    """Add or edit a label of the set (curators). Renaming keeps every annotation that carries it."""
    name = " ".join(name.split())
    if not name or len(name) > 60:
        raise ValueError("a label needs a name of at most 60 characters")
    with transaction.atomic():
        clash = Label.objects.filter(name__iexact=name).exclude(pk=label_id).first()
        if clash is not None:
            raise ValueError(f"there is a label {clash.name!r} already")
        if label_id is None:
            return Label.objects.create(name=name, description=description.strip(), position=position, active=active)
        updated = Label.objects.filter(pk=label_id, version=version).update(
            name=name, description=description.strip(), position=position, active=active, version=F("version") + 1
        )
        if not updated:
            current = Label.objects.filter(pk=label_id).first()
            raise Conflict(current, "someone changed this label since you opened it")
        return Label.objects.get(pk=label_id)
