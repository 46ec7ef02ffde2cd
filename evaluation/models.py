"""Evaluation results: stored action embeddings (reused until the text changes) and S_div per agent per dialogue."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from dialogues.runs.models import Dialogue, Turn


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


class JobStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class JobScope(models.TextChoices):
    DIALOGUE = "dialogue", "dialogue"
    RUN = "run", "run"
    CORPUS = "corpus", "corpus"


class EpisodeEvaluator(models.TextChoices):
    """Who writes SOTOPIA-EVAL's prompt and answer schema: omega-web's own (the default) or the installed sotopia
    package's evaluator (ADR 0025). The judge model is the configured one either way; their scores are never
    averaged together."""

    OMEGA = "omega", "omega-web's prompt"
    SOTOPIA = "sotopia", "sotopia's evaluator"


class EvaluationJob(models.Model):
    """One evaluation of a dialogue, a run or a corpus: which metrics, which judge (model and prompt versions), its
    progress while it runs on a worker, what it computed and every item it could not judge, with why."""

    scope = models.CharField(max_length=10, choices=JobScope.choices)
    run = models.ForeignKey("dialogues.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    dialogue = models.ForeignKey(Dialogue, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    corpus = models.ForeignKey("dialogues.Corpus", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    dialogue_ids = models.JSONField(default=list)
    metrics = models.JSONField(default=list, help_text="A subset of sdiv, srel, sotopia")
    judge_backend = models.CharField(max_length=20, blank=True, help_text="simulated, or openai")
    judge_model = models.CharField(max_length=200, blank=True)
    judge_endpoints = models.JSONField(default=list, blank=True, help_text="Base URLs used (never the API key)")
    config = models.JSONField(default=dict, blank=True, help_text="JudgeConfig: samples, history, retries…")
    versions = models.JSONField(default=dict, blank=True, help_text="Prompt version per judged metric")
    prompt_set_name = models.CharField(max_length=100, default="built-in", help_text="The judges' prompt set")
    prompt_set_version = models.CharField(max_length=32, blank=True, help_text="Its content hash when the job began")
    episode_evaluator = models.CharField(
        max_length=10,
        choices=EpisodeEvaluator.choices,
        default=EpisodeEvaluator.OMEGA,
        help_text="Whose prompt and answer schema SOTOPIA-EVAL uses",
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.JSONField(default=dict, blank=True, help_text="Phase, items done of the total")
    counts = models.JSONField(default=dict, blank=True)
    problems = models.JSONField(default=list, blank=True, help_text="Items the judge could not score, and why")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk} ({', '.join(self.metrics)})"

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)


class RelevanceScore(models.Model):
    """The relevance judge's score of one action (S_rel, paper B.4.2) for one judge version: the mean of its
    samples, each with its justification. `prompt_sha256` is of the exact prompt: a changed text, goal or history
    makes it stale. A failed judgement keeps the problem and no score."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="relevance")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="relevance")
    speaker = models.PositiveSmallIntegerField()
    judge_model = models.CharField(max_length=200)
    prompt_version = models.CharField(max_length=12)
    prompt_sha256 = models.CharField(max_length=64)
    score = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=list)
    rejected = models.JSONField(default=list, blank=True)
    problem = models.TextField(blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["turn", "judge_model", "prompt_version"], name="one_relevance_per_judge")
        ]
        indexes = [models.Index(fields=["dialogue", "judge_model", "prompt_version"])]

    def __str__(self) -> str:
        return f"relevance of turn {self.turn_id}"


class EpisodeScore(models.Model):
    """SOTOPIA-EVAL of one agent in one dialogue for one evaluator and judge version: the seven dimensions averaged
    over the samples (each sample's scores and reasoning kept), Overall = their mean. A failed judgement keeps the
    problem."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="episode_scores")
    speaker = models.PositiveSmallIntegerField()
    evaluator = models.CharField(
        max_length=10,
        choices=EpisodeEvaluator.choices,
        default=EpisodeEvaluator.OMEGA,
        help_text="Whose prompt and answer schema produced the score",
    )
    judge_model = models.CharField(max_length=200)
    prompt_version = models.CharField(max_length=12)
    prompt_sha256 = models.CharField(max_length=64)
    bel = models.FloatField(null=True, blank=True)
    rel = models.FloatField(null=True, blank=True)
    kno = models.FloatField(null=True, blank=True)
    sec = models.FloatField(null=True, blank=True)
    soc = models.FloatField(null=True, blank=True)
    fin = models.FloatField(null=True, blank=True)
    goal = models.FloatField(null=True, blank=True)
    overall = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=list, help_text="Per sample: each dimension's score and reasoning")
    requested = models.PositiveSmallIntegerField(default=0)
    rejected = models.JSONField(default=list, blank=True)
    problem = models.TextField(blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dialogue_id", "speaker"]
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "speaker", "evaluator", "judge_model", "prompt_version"],
                name="one_episode_score_per_evaluator_and_judge",
            )
        ]

    def __str__(self) -> str:
        return f"SOTOPIA-EVAL of agent {self.speaker + 1} in dialogue {self.dialogue_id}"

    def value(self, label: str) -> float | None:
        return getattr(self, label.lower())
