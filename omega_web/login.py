"""Login attempts limited: after too many failed logins for one account name, or from one address, within a window,
further attempts are refused — even with the right password — until the lock passes. Counts live in the database
(LoginThrottle), so every web process shares them; a successful login clears the account's count."""

from __future__ import annotations

import math
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.utils import timezone

from omega_web.models import LoginThrottle


def _keys(username: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"user:{username.strip().lower()[:250]}", settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT)]
    if address:
        keys.append((f"ip:{address}", settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS))
    return keys


def locked_for(username: str, address: str | None) -> int:
    """Seconds until attempts for this account name or address are allowed again; 0 when they are."""
    now = timezone.now()
    until = LoginThrottle.objects.filter(
        key__in=[k for k, _ in _keys(username, address)], locked_until__gt=now
    ).values_list("locked_until", flat=True)
    return max((math.ceil((u - now).total_seconds()) for u in until), default=0)


def record_failure(username: str, address: str | None) -> None:
    now = timezone.now()
    window = timedelta(seconds=settings.OMEGA_LOGIN_WINDOW_SECONDS)
    with transaction.atomic():
        for key, limit in _keys(username, address):
            row, _ = LoginThrottle.objects.select_for_update().get_or_create(key=key, defaults={"window_start": now})
            if now - row.window_start > window:
                row.failures, row.window_start = 0, now
            row.failures += 1
            if row.failures >= limit:
                row.locked_until = now + window
            row.save()


def record_success(username: str) -> None:
    LoginThrottle.objects.filter(key=_keys(username, None)[0][0]).delete()


def client_address(request) -> str | None:
    """The client's address as the server saw it (behind a proxy, the proxy's unless the proxy is trusted)."""
    if request is None:
        return None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "") if settings.OMEGA_TRUST_X_FORWARDED_FOR else ""
    return (forwarded.split(",")[0].strip() or request.META.get("REMOTE_ADDR")) or None


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        wait = locked_for(username, address)
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            raise forms.ValidationError(
                f"Too many failed logins for this account or from this address: try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                record_failure(username, address)
            raise
        record_success(username)
        return cleaned
