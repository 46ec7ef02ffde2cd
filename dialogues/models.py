"""The task library (agents, scenarios, relationships, tasks) and the record of every import."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RelationshipType(models.TextChoices):
    # Codes are SOTOPIA's, stored as strings "0"-"5".
    STRANGER = "0", "stranger"
    KNOW_BY_NAME = "1", "know by name"
    ACQUAINTANCE = "2", "acquaintance"
    FRIEND = "3", "friend"
    ROMANTIC = "4", "romantic relationship"
    FAMILY = "5", "family member"


class Split(models.TextChoices):
    TRAIN = "train", "train"
    EVAL = "eval", "eval"


class AgentProfile(models.Model):
    external_id = models.CharField(max_length=64, unique=True, help_text="Id in the source data (SOTOPIA agent_id).")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    age = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Unknown only for a partial profile")
    occupation = models.CharField(max_length=200, blank=True)
    gender = models.CharField(max_length=50, blank=True)
    gender_pronoun = models.CharField(max_length=50, blank=True)
    public_info = models.TextField(blank=True)
    big_five = models.TextField(blank=True)
    moral_values = models.JSONField(default=list, blank=True)
    schwartz_personal_values = models.JSONField(default=list, blank=True)
    personality_and_values = models.TextField(blank=True)
    decision_making_style = models.CharField(max_length=200, blank=True)
    secret = models.TextField(blank=True)
    mbti = models.CharField(max_length=10, blank=True)
    source = models.CharField(max_length=50, default="sotopia")
    partial = models.BooleanField(
        default=False, help_text="Rebuilt from what a prompt showed (an imported corpus): unknown facts are empty"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["first_name", "last_name"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Scenario(models.Model):
    external_id = models.CharField(max_length=64, unique=True, help_text="Id in the source data (SOTOPIA env_id).")
    codename = models.CharField(max_length=200, db_index=True)
    source = models.CharField(max_length=100, blank=True, help_text="Where the scenario comes from.")
    text = models.TextField()
    agent1_goal = models.TextField()
    agent2_goal = models.TextField()
    relationship = models.CharField(max_length=1, choices=RelationshipType.choices, blank=True)
    age_constraint = models.CharField(max_length=200, blank=True)
    occupation_constraint = models.CharField(max_length=200, blank=True)
    agent_constraint = models.CharField(max_length=500, blank=True)
    partial = models.BooleanField(
        default=False,
        help_text="Rebuilt from agents' prompts (an imported corpus): a goal or the relationship may be unknown",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["codename"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(partial=True)
                | (~models.Q(agent1_goal="") & ~models.Q(agent2_goal="") & ~models.Q(relationship="")),
                name="scenario_has_two_goals",
            )
        ]

    def __str__(self) -> str:
        return self.codename

    @property
    def goals(self) -> tuple[str, str]:
        return (self.agent1_goal, self.agent2_goal)


class Relationship(models.Model):
    """A relationship between two agents. A pair may have several rows with different types."""

    external_id = models.CharField(max_length=64, unique=True)
    agent1 = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="+")
    agent2 = models.ForeignKey(AgentProfile, on_delete=models.CASCADE, related_name="+")
    relationship = models.CharField(max_length=1, choices=RelationshipType.choices)
    background_story = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return f"{self.agent1} – {self.agent2} ({self.get_relationship_display()})"


class Task(models.Model):
    """A scenario with an ordered pair of agents: agent 1 speaks first and pursues the scenario's first goal."""

    external_id = models.CharField(max_length=64, unique=True, help_text="Id in the source data (SOTOPIA combo_id).")
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="tasks")
    agent1 = models.ForeignKey(AgentProfile, on_delete=models.PROTECT, related_name="tasks_as_agent1")
    agent2 = models.ForeignKey(AgentProfile, on_delete=models.PROTECT, related_name="tasks_as_agent2")
    hard = models.BooleanField(default=False, db_index=True)
    source = models.CharField(max_length=50, default="sotopia", db_index=True)
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.EVAL, db_index=True)
    contexts = models.JSONField(
        default=dict,
        blank=True,
        help_text="Imported tasks: the context block each side's prompt showed, verbatim ({'0': …, '1': …})",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scenario__codename", "id"]

    def __str__(self) -> str:
        return f"{self.scenario.codename}: {self.agent1} & {self.agent2}"

    @property
    def agents(self) -> tuple[AgentProfile, AgentProfile]:
        return (self.agent1, self.agent2)


class ImportStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class ImportKind(models.TextChoices):
    PROFILES = "profiles", "task profiles"
    CORPUS = "corpus", "dialogue corpus"


class ImportJob(models.Model):
    """One import, from the upload form or the CLI, with its outcome: task profile files (kept in the database), or a
    dialogue corpus made elsewhere (a file on disk, read as a stream; see dialogues/importers/corpus.py)."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    origin = models.CharField(max_length=10, choices=[("upload", "upload"), ("cli", "command line")])
    kind = models.CharField(max_length=10, choices=ImportKind.choices, default=ImportKind.PROFILES)
    format = models.CharField(max_length=20, blank=True, help_text="Corpus imports: full, sotopia-sft or auto")
    path = models.CharField(max_length=1000, blank=True, help_text="Corpus imports: the file read")
    skip_bad = models.BooleanField(default=False, help_text="Import the good records, list the skipped ones")
    progress = models.JSONField(default=dict, blank=True, help_text="Phase, bytes read of the total, records")
    skipped = models.JSONField(default=list, blank=True, help_text="Every record skipped, with why")
    created = models.JSONField(
        default=dict, blank=True, help_text="Rows this import created, removed again if it fails part-way"
    )
    split = models.CharField(max_length=5, choices=Split.choices)
    source = models.CharField(max_length=50)
    files = models.JSONField(default=list, help_text="Kind, name as given, size and sha256 of each file.")
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    counts = models.JSONField(default=dict, blank=True)
    problems = models.JSONField(default=list, blank=True, help_text="Errors naming file, line and field.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import #{self.pk} ({self.status})"

    @property
    def change_rows(self) -> list[tuple[str, dict[str, int]]]:
        return [
            (kind, self.counts[kind])
            for kind in ("agents", "scenarios", "relationships", "tasks")
            if kind in self.counts
        ]

    @property
    def is_done(self) -> bool:
        return self.status in {ImportStatus.SUCCEEDED, ImportStatus.FAILED}


class ImportFile(models.Model):
    """The bytes of one imported file, kept in the database so that a worker on any machine can read them."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="stored_files")
    kind = models.CharField(max_length=20)
    name = models.CharField(max_length=255)
    content = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "kind"], name="one_file_per_kind_per_import")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


# --- runs and dialogues ----------------------------------------------------------------------------------


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
    prompt_set_version = models.CharField(max_length=32)
    backend = models.CharField(max_length=20, help_text="simulated, or openai (an OpenAI-compatible server)")
    model = models.CharField(max_length=200)
    endpoints = models.JSONField(default=list, blank=True, help_text="Base URLs used (never the API key).")
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


class Branch(models.TextChoices):
    NSC = "NSC", "native strategy clone"
    SSI = "SSI", "simple strategy injection"
    NSI = "NSI", "negotiation strategy injection"
    FORCED = "forced", "forced"
    HUMAN = "human", "played by a person"
    IMPORTED = "import", "imported (no strategy recorded)"


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
    latency_ms = models.FloatField(default=0)
    endpoint = models.CharField(max_length=300, blank=True)
    model = models.CharField(max_length=200, blank=True)
    transport_retries = models.PositiveSmallIntegerField(default=0)
    requests = models.PositiveSmallIntegerField(default=1)
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


# --- annotation and curation -----------------------------------------------------------------------------


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


# --- corpora ----------------------------------------------------------------------------------------------


class Corpus(models.Model):
    """A named training corpus: filters over the dialogues, manual includes and excludes, and the overrides its
    curator recorded. Exporting freezes a version (CorpusVersion) with its files and manifest."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    filters = models.JSONField(default=dict, blank=True, help_text="CorpusFilters as JSON")
    includes = models.JSONField(default=list, blank=True, help_text="Dialogue ids added by hand")
    excludes = models.JSONField(default=list, blank=True, help_text="Dialogue ids removed by hand")
    overrides = models.JSONField(
        default=list, blank=True, help_text="Recorded decisions to include eval-split or simulated dialogues"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, help_text="Edit version (conflicts), not an export")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "corpora"

    def __str__(self) -> str:
        return self.name


class CorpusVersion(models.Model):
    """One export of a corpus, frozen: the dialogues it holds, the zip written once, and its manifest (filters,
    counts, runs, models, prompt-set versions, overrides, file checksums, who and when)."""

    corpus = models.ForeignKey(Corpus, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    dialogue_ids = models.JSONField(default=list)
    formats = models.JSONField(default=list)
    manifest = models.JSONField(default=dict)
    options = models.JSONField(default=dict, blank=True, help_text="ExportOptions as JSON")
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    written = models.PositiveIntegerField(default=0, help_text="Dialogues written so far")
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True, help_text="The zip under OMEGA_EXPORT_DIR")
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["corpus_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["corpus", "number"], name="one_corpus_version_number")]

    def __str__(self) -> str:
        return f"{self.corpus.name} v{self.number}"

    @property
    def is_done(self) -> bool:
        return self.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED)


class LoginThrottle(models.Model):
    """Failed logins counted per account name and per client address in a sliding window (omega_web/login.py),
    in the database so that every web process of the scaled mode shares them."""

    key = models.CharField(max_length=300, unique=True, help_text="user:<name> or ip:<address>")
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"
