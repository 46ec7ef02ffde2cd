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


# --- people rating what the judges rated (calibration) ----------------------------------------------------

RELEVANCE_SCALE = (-1.0, -0.5, 0.0, 0.5, 1.0)  # S_rel's scale (paper B.4.2)
# SOTOPIA-EVAL's seven dimensions and their ranges (METHOD.md §4; evaluation.judges.DIMENSIONS holds the judge's
# copy, and a test keeps the two the same: this area may not import evaluation).
EPISODE_DIMENSIONS = (
    ("BEL", 0, 10),
    ("REL", -5, 5),
    ("KNO", 0, 10),
    ("SEC", -10, 0),
    ("SOC", -10, 0),
    ("FIN", -5, 5),
    ("GOAL", 0, 10),
)


class StepRatingAnnotation(models.Model):
    """One person's answers to the step-rating judge's own questions on a rated turn: step1 / step2 the current goal
    score (0–10) of agent 1 / agent 2, step3 / step4 the predicted score, step5 whether it should go on (0 = end).
    Each is optional. Versioned like the other annotations."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="step_rating_annotations")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="step_rating_annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    step1 = models.PositiveSmallIntegerField(null=True, blank=True)
    step2 = models.PositiveSmallIntegerField(null=True, blank=True)
    step3 = models.PositiveSmallIntegerField(null=True, blank=True)
    step4 = models.PositiveSmallIntegerField(null=True, blank=True)
    step5 = models.PositiveSmallIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["turn_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "annotator"], name="one_step_rating_per_annotator"),
            *(
                models.CheckConstraint(
                    condition=models.Q(**{f"{step}__isnull": True}) | models.Q(**{f"{step}__lte": high}),
                    name=f"human_{step}_in_range",
                )
                for step, high in (("step1", 10), ("step2", 10), ("step3", 10), ("step4", 10), ("step5", 1))
            ),
        ]
        indexes = [models.Index(fields=["dialogue", "annotator"])]

    def __str__(self) -> str:
        return f"step rating of turn {self.turn_id} by {self.annotator_id}"

    def scores(self) -> dict[str, int]:
        """The steps answered."""
        steps = ("step1", "step2", "step3", "step4", "step5")
        return {step: getattr(self, step) for step in steps if getattr(self, step) is not None}


class RelevanceAnnotation(models.Model):
    """One person's relevance score of one action on S_rel's scale (−1, −0.5, 0, 0.5, 1)."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="relevance_annotations")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="relevance_annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["turn_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "annotator"], name="one_relevance_per_annotator"),
            models.CheckConstraint(condition=models.Q(score__in=RELEVANCE_SCALE), name="human_relevance_on_scale"),
        ]

    def __str__(self) -> str:
        return f"relevance of turn {self.turn_id} by {self.annotator_id}"


class EpisodeAnnotation(models.Model):
    """One person's SOTOPIA-EVAL scores of one agent in one dialogue: any of the seven dimensions, in their
    ranges ({label: score})."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="episode_annotations")
    speaker = models.PositiveSmallIntegerField(help_text="0 = agent 1, 1 = agent 2")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    scores = models.JSONField(default=dict, help_text="Dimension label (BEL, REL, …) → score in its range")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dialogue_id", "speaker", "annotator_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "speaker", "annotator"], name="one_episode_rating_per_annotator"
            )
        ]

    def __str__(self) -> str:
        return f"SOTOPIA-EVAL of agent {self.speaker + 1} in dialogue {self.dialogue_id} by {self.annotator_id}"


class CalibrationQueue(models.Model):
    """A run's calibration queue: rated turns sampled by the strategy that followed (NSC / SSI / NSI /
    termination), each dialogue's final rated turn always in, `target` turns wanted, `people` ratings per turn."""

    run = models.OneToOneField("dialogues.Run", on_delete=models.CASCADE, related_name="calibration_queue")
    target = models.PositiveIntegerField(default=40)
    people = models.PositiveSmallIntegerField(default=2)
    seed = models.BigIntegerField(default=0)
    items = models.JSONField(default=list, help_text="[{turn, stratum}] in the order raters get them")
    strata = models.JSONField(default=dict, help_text="Rated turns per stratum, and how many were drawn")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"calibration queue of run {self.run_id}"
