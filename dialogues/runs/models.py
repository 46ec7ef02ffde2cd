"""Runs and what they hold: a run (its configuration, tasks and status), its dialogues (one attempt at one task,
with the state and lease stepping needs), their turns with the strategy branch that made each, step ratings, every
LLM call, and this database's own name (Instance)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from dialogues.engine.branches import Branch as EngineBranch
from dialogues.engine.prompts import BUILTIN_NAME, builtin
from dialogues.library.models import ImportJob, Task


class RunStatus(models.TextChoices):
    RUNNING = "running", "running"
    PAUSED = "paused", "paused"
    FINISHED = "finished", "finished"
    CANCELLED = "cancelled", "cancelled"
    IMPORTING = "importing", "importing"


class RunKind(models.TextChoices):
    GENERATION = "generation", "generation"
    FORK = "fork", "fork (experiment)"
    IMPORTED = "imported", "imported"
    EVALUATION = "evaluation", "evaluation (benchmark)"


class Setting(models.TextChoices):
    """How an evaluation run pairs the agent under test (paper A.3)."""

    SELF_PLAY = "self_play", "self-play"
    REFERENCE = "reference", "against a reference model"


class Run(models.Model):
    """A batch of expert self-play: its configuration (every parameter of the method) and its tasks. A fork run
    holds the forks made from one turn of one dialogue (one, or a counterfactual batch of two arms)."""

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=RunKind.choices, default=RunKind.GENERATION, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    variant = models.CharField(max_length=8)
    config = models.JSONField(help_text="RunConfig: thresholds, sample counts, sampling, seed…")
    prompt_set_name = models.CharField(max_length=100, default="built-in", help_text="The prompt set's name")
    prompt_set_version = models.CharField(max_length=32, help_text="The prompt set's content hash when the run began")
    backend = models.CharField(max_length=20, help_text="simulated, or openai (an OpenAI-compatible server)")
    model = models.CharField(max_length=200)
    endpoints = models.JSONField(default=list, blank=True, help_text="Base URLs used (never the API key).")
    server_profiles = models.JSONField(
        default=list,
        blank=True,
        help_text="What each endpoint could do when the run started (dialogues/llm/profile.py)",
    )
    simulated = models.BooleanField(default=False)
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    status_reason = models.CharField(max_length=300, blank=True, help_text="Why the run is paused, if it is.")
    tasks = models.ManyToManyField(Task, related_name="runs")
    max_in_flight = models.PositiveIntegerField(default=256, help_text="Dialogues stepping at the same time")
    token_budget = models.BigIntegerField(
        null=True, blank=True, help_text="Pause the run when this many tokens are used"
    )
    # annotation
    blind_annotation = models.BooleanField(
        default=True, help_text="Annotators see others' annotations of a dialogue only after submitting their own"
    )
    annotators_target = models.PositiveSmallIntegerField(default=2, help_text="Annotators wanted per dialogue")
    # imported runs: the run's key where it was made, and the import that brought it
    external_key = models.CharField(max_length=200, blank=True, db_index=True)
    import_job = models.ForeignKey(ImportJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    # evaluation runs: the setting, the reference model (the run's own backend is the agent under test) and the
    # task order and partition used, with the check of the paper's hard indices against that order
    setting = models.CharField(max_length=10, choices=Setting.choices, blank=True)
    reference_backend = models.CharField(max_length=20, blank=True)
    reference_model = models.CharField(max_length=200, blank=True)
    reference_endpoints = models.JSONField(default=list, blank=True, help_text="Base URLs (never the API key)")
    benchmark = models.JSONField(default=dict, blank=True, help_text="Order and partition sources, the hard check")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.name}"

    @property
    def builtin_changed_since(self) -> bool:
        """The run used the built-in prompt set, whose files have changed since it began."""
        return self.prompt_set_name == BUILTIN_NAME and self.prompt_set_version != builtin().version

    @property
    def is_imported(self) -> bool:
        return self.kind == RunKind.IMPORTED

    @property
    def is_fork(self) -> bool:
        return self.kind == RunKind.FORK

    @property
    def is_evaluation(self) -> bool:
        return self.kind == RunKind.EVALUATION


class DialogueStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    PAUSED = "paused", "paused"
    FINISHED = "finished", "finished"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class Dialogue(models.Model):
    """One attempt at one task within a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="dialogues")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="dialogues")
    attempt = models.PositiveSmallIntegerField(default=0, help_text="0-based attempt index for this task")
    status = models.CharField(
        max_length=10, choices=DialogueStatus.choices, default=DialogueStatus.PENDING, db_index=True
    )
    seed = models.BigIntegerField(default=0)
    nsi_side = models.PositiveSmallIntegerField(null=True, blank=True, help_text="h-NSI: the side in the workflow")
    simulated = models.BooleanField(default=False)
    filter_passed = models.BooleanField(null=True, blank=True)
    filter_note = models.CharField(max_length=300, blank=True)
    kept = models.BooleanField(default=False, db_index=True)
    final_goal_c = models.FloatField(null=True, blank=True, db_index=True)
    final_goal_p = models.FloatField(null=True, blank=True)
    nsi_used = models.BooleanField(default=False, db_index=True)
    ssi_used = models.BooleanField(default=False, db_index=True)
    turns_count = models.PositiveSmallIntegerField(default=0)
    end_reason = models.CharField(max_length=20, blank=True)
    failure_reason = models.TextField(blank=True)
    step_attempts = models.PositiveIntegerField(default=0, help_text="How many steps were started (retries too).")
    saved_steps = models.PositiveIntegerField(default=0, help_text="How many steps were written (its version).")
    # The lease: while a dialogue is in flight, the holder of lease_token may step it until lease_until. A worker
    # extends it with a heartbeat while it steps; a stale lease is taken over by the reconciler. Not indexed: every
    # step moves the lease, and an update that changes no indexed column writes no index entries (a HOT update on
    # PostgreSQL); the reconciler finds the running dialogues by status.
    lease_token = models.CharField(max_length=36, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    tokens = models.PositiveBigIntegerField(default=0, help_text="Prompt + completion tokens of its saved LLM calls")
    calls_count = models.PositiveIntegerField(default=0, help_text="Its saved LLM calls")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # experiments: a fork shares its parent's turns 0..fork_turn (copied, marked inherited) and goes on with changes
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    fork_turn = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The last turn shared")
    changes = models.JSONField(
        default=dict, blank=True, help_text="What differs from the parent: seed, model, configuration, who plays"
    )
    arm = models.CharField(max_length=1, blank=True, help_text="Counterfactual batch: setting A or B")
    human_side = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The side a person plays")
    agent_side = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Evaluation against a reference model: the side the agent under test plays"
    )
    # imported dialogues: their key where they were made, the import, and what came with them (source file and
    # lines, decisions and adjudication made elsewhere) — never mixed with this instance's own annotations
    external_key = models.CharField(max_length=200, blank=True, db_index=True)
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="dialogues"
    )
    imported = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run_id", "task_id", "attempt"]
        constraints = [models.UniqueConstraint(fields=["run", "task", "attempt"], name="one_dialogue_per_attempt")]
        indexes = [models.Index(fields=["run", "status"])]

    def __str__(self) -> str:
        return f"dialogue #{self.pk} (run {self.run_id}, task {self.task_id}, attempt {self.attempt})"


_BRANCH_LABELS = {
    EngineBranch.NSC: "native strategy clone",
    EngineBranch.SSI: "simple strategy injection",
    EngineBranch.NSI: "negotiation strategy injection",
    EngineBranch.FORCED: "forced",
    EngineBranch.HUMAN: "played by a person",
    EngineBranch.IMPORTED: "imported (no strategy recorded)",
}
# the engine's branches as Django choices: same members and values, with the labels pages show
Branch = models.TextChoices("Branch", [(b.name, (b.value, _BRANCH_LABELS[b])) for b in EngineBranch], module=__name__)


class Turn(models.Model):
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveSmallIntegerField()
    speaker = models.PositiveSmallIntegerField(help_text="0 = agent 1, 1 = agent 2")
    action_type = models.CharField(max_length=30)
    argument = models.TextField(blank=True)
    forced = models.BooleanField(default=False)
    branch = models.CharField(max_length=6, choices=Branch.choices)
    reason = models.TextField(blank=True, help_text="Why the engine chose this branch.")
    nsi_step = models.CharField(max_length=30, blank=True)
    proposal = models.CharField(max_length=20, blank=True)
    draft = models.TextField(blank=True, help_text="NSI: the text before style transfer")
    own_utility = models.JSONField(null=True, blank=True)
    other_utility = models.JSONField(null=True, blank=True)
    human = models.BooleanField(default=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Who typed it (human turns)",
    )  # fmt: skip
    inherited = models.BooleanField(default=False, help_text="Copied from the parent when the dialogue was forked")
    imported = models.JSONField(
        default=dict, blank=True, help_text="Imported turns: annotations and correction made elsewhere, extra fields"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dialogue_id", "index"]
        constraints = [models.UniqueConstraint(fields=["dialogue", "index"], name="one_turn_per_index")]

    def __str__(self) -> str:
        return f"turn {self.index} of dialogue {self.dialogue_id}"


class StepRating(models.Model):
    """The step rating taken after a turn: every judge sample, the valid count and the aggregate."""

    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="rating")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="ratings")
    samples = models.JSONField(help_text="Valid samples: scores of step1..step5 and analyses")
    rejected = models.JSONField(default=list, blank=True, help_text="Malformed samples and why")
    requested = models.PositiveSmallIntegerField()
    returned = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Answers the server sent back over all requests, re-asks included"
    )
    valid = models.PositiveSmallIntegerField()
    goal_c = models.FloatField()
    goal_p = models.FloatField()
    terminate = models.BooleanField()
    closing = models.BooleanField(default=False, help_text="Taken because the dialogue ended unrated")

    class Meta:
        ordering = ["dialogue_id", "turn__index"]

    def __str__(self) -> str:
        return f"rating after turn {self.turn_id}: {self.goal_c:.2f}/{self.goal_p:.2f}"


class LLMCall(models.Model):
    """One request to the model (or the simulated expert), with everything needed to understand it."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="llm_calls")
    turn_index = models.PositiveSmallIntegerField(help_text="The turn this call produced or rated")
    step_attempt = models.PositiveIntegerField(help_text="Dialogue.step_attempts when the step began")
    purpose = models.CharField(max_length=40, db_index=True)
    messages = models.JSONField()
    params = models.JSONField(default=dict)
    responses = models.JSONField(default=list)
    parsed = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Prompt tokens the server served from its prefix cache (usage.prompt_tokens_details.cached_tokens);"
        " empty when the server does not report them",
    )
    latency_ms = models.FloatField(default=0)
    endpoint = models.CharField(max_length=300, blank=True)
    model = models.CharField(max_length=200, blank=True)
    transport_retries = models.PositiveSmallIntegerField(default=0)
    requests = models.PositiveSmallIntegerField(default=1)
    finish_reasons = models.JSONField(
        default=list, blank=True, help_text='How each answer ended: "stop", or "length" when cut off at max_tokens'
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dialogue_id", "turn_index", "id"]

    def __str__(self) -> str:
        return f"{self.purpose} (dialogue {self.dialogue_id}, turn {self.turn_index})"


class Instance(models.Model):
    """This database's own name (one row), so that exported dialogues carry keys no other instance uses."""

    key = models.CharField(max_length=32, unique=True)

    def __str__(self) -> str:
        return self.key
