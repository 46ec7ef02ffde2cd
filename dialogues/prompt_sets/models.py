"""Prompt sets saved in the database (ADR 0027): each an immutable version of every template, named and content-
hashed. The built-in set is not a row: it is read from the repository's files (dialogues/engine/prompts.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from dialogues.engine.prompts import AnswerShapes, Syntax


class PromptSet(models.Model):
    name = models.CharField(max_length=100, unique=True)
    version = models.CharField(max_length=12, unique=True, help_text="Content hash of syntax, answers and templates")
    syntax = models.CharField(max_length=10, choices=[(s.value, s.value) for s in Syntax])
    answers = models.CharField(max_length=20, choices=[(a.value, a.value) for a in AnswerShapes])
    templates = models.JSONField(help_text="{template name: text}, every template the engine and the judges use")
    based_on_name = models.CharField(max_length=100, blank=True)
    based_on_version = models.CharField(max_length=12, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.version})"
