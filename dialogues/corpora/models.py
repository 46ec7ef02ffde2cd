"""Training corpora: a corpus (filters, manual includes and excludes, recorded overrides) and its frozen versions
(the dialogues each holds, its files' status, manifest and zip)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class VersionStatus(models.TextChoices):
    """Where a frozen version's files are: requested, being written, written, or failed (with the reason)."""

    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


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
    status = models.CharField(max_length=10, choices=VersionStatus.choices, default=VersionStatus.PENDING)
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
        return self.status in (VersionStatus.SUCCEEDED, VersionStatus.FAILED)
