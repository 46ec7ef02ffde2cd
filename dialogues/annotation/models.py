"""Annotation and curation: the label set, each annotator's turn annotations and dialogue decisions, every
corrected text ever saved (Correction), and a curator's adjudication. Curated rows carry a version for conflicts."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from dialogues.runs.models import Dialogue, Turn


class Label(models.Model):
    """A label annotators put on turns. The set is edited by curators; a retired label stays on old annotations."""

    name = models.CharField(max_length=60, unique=True)
    description = models.CharField(max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in forms; keys 1–9 follow it")
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Decision(models.TextChoices):
    ACCEPT = "accept", "accept"
    REJECT = "reject", "reject"
    REVIEW = "needs_review", "needs review"


class TurnAnnotation(models.Model):
    """One annotator's labels, quality rating, note and corrected text for one turn. `version` rises with every
    save; a save that names an older version is refused as a conflict."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="annotations")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="turn_annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    labels = models.ManyToManyField(Label, blank=True, related_name="turn_annotations")
    quality = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 (poor) to 5 (excellent)")
    note = models.TextField(blank=True)
    corrected_text = models.TextField(blank=True, help_text="Replaces the turn's text in exports (original kept)")
    correction_reason = models.CharField(max_length=300, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["turn__index", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "annotator"], name="one_turn_annotation_per_annotator"),
            models.CheckConstraint(
                condition=models.Q(quality__isnull=True) | models.Q(quality__gte=1, quality__lte=5),
                name="turn_quality_1_to_5",
            ),
        ]
        indexes = [models.Index(fields=["dialogue", "annotator"])]

    def __str__(self) -> str:
        return f"annotation of turn {self.turn_id} by {self.annotator_id}"


class Correction(models.Model):
    """Every corrected text ever saved for a turn, with the original it replaced, who, when and why. Never
    edited: the history of corrections."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="corrections")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    original = models.TextField()
    text = models.TextField(blank=True, help_text="Empty: the correction was withdrawn")
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["turn_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"correction of turn {self.turn_id} by {self.author_id}"


class DialogueAnnotation(models.Model):
    """One annotator's decision on a dialogue. Submitting it ends blind mode for them on this dialogue."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    decision = models.CharField(max_length=12, choices=Decision.choices, blank=True)
    note = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dialogue_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["dialogue", "annotator"], name="one_dialogue_annotation_per_annotator")
        ]

    def __str__(self) -> str:
        return f"{self.decision or 'undecided'} on dialogue {self.dialogue_id} by {self.annotator_id}"


class Adjudication(models.Model):
    """A curator's authoritative decision on a dialogue, over the annotators'."""

    dialogue = models.OneToOneField(Dialogue, on_delete=models.CASCADE, related_name="adjudication")
    curator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=12, choices=Decision.choices)
    note = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    decided_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.decision} on dialogue {self.dialogue_id} (adjudicated)"
