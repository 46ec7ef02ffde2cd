"""Evaluation results: stored action embeddings (reused until the text changes) and S_div per agent per dialogue."""

from __future__ import annotations

from django.db import models

from dialogues.models import Dialogue, Turn


class ActionEmbedding(models.Model):
    """One action's sentence embedding (all-MiniLM-L6-v2, float32, compact bytes), for the text it was computed
    from: a turn whose text changes (a curator's correction) gets a new one."""

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="embedding")
    text_sha256 = models.CharField(max_length=64)
    model = models.CharField(max_length=100)
    vector = models.BinaryField()
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"embedding of turn {self.turn_id}"


class DiversityScore(models.Model):
    """S_div of one agent in one dialogue: x is the mean pairwise cosine similarity of its actions (clamped to
    [0, 1]); s_div = (1 − x^α)^α. Fewer than two actions: both null, with the count kept."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="diversity")
    speaker = models.PositiveSmallIntegerField(help_text="0 = agent 1, 1 = agent 2")
    actions = models.PositiveSmallIntegerField(help_text="Actions with content that were embedded")
    x = models.FloatField(null=True, blank=True)
    s_div = models.FloatField(null=True, blank=True)
    alpha = models.FloatField()
    model = models.CharField(max_length=100)
    texts_sha256 = models.CharField(
        max_length=64, help_text="Of the texts it was computed from: stale when they change"
    )
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dialogue_id", "speaker"]
        constraints = [models.UniqueConstraint(fields=["dialogue", "speaker"], name="one_diversity_per_agent")]

    def __str__(self) -> str:
        return f"S_div of agent {self.speaker + 1} in dialogue {self.dialogue_id}"

    @property
    def s_div_100(self) -> float | None:
        return None if self.s_div is None else 100 * self.s_div
