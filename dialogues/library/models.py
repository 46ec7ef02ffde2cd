"""The task library (agents, scenarios, relationships, tasks) and the record of every import."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from dialogues.engine.context import RelationshipType as EngineRelationshipType

_RELATIONSHIP_LABELS = {
    EngineRelationshipType.STRANGER: "stranger",
    EngineRelationshipType.KNOW_BY_NAME: "know by name",
    EngineRelationshipType.ACQUAINTANCE: "acquaintance",
    EngineRelationshipType.FRIEND: "friend",
    EngineRelationshipType.ROMANTIC: "romantic relationship",
    EngineRelationshipType.FAMILY: "family member",
}
# the engine's relationship types (SOTOPIA's codes, stored as strings "0"-"5") as Django choices, with their labels
RelationshipType = models.TextChoices(
    "RelationshipType",
    [(r.name, (r.value, _RELATIONSHIP_LABELS[r])) for r in EngineRelationshipType],
    module=__name__,
)


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
    dialogue corpus made elsewhere (a file on disk, read as a stream; see dialogues/corpus_import/)."""

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
