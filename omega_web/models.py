"""The project's own rows: the login throttle (omega_web/login.py)."""

from __future__ import annotations

from django.db import models


class LoginThrottle(models.Model):
    """Failed logins counted per account name and per client address in a sliding window (omega_web/login.py),
    in the database so that every web process of the scaled mode shares them."""

    key = models.CharField(max_length=300, unique=True, help_text="user:<name> or ip:<address>")
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"
