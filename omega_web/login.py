"""Login limits, by django-axes (ADR 0020). Axes records every failed login in its own table (shared by every web
process, like any row), refuses attempts for a locked account name or address in its authentication backend, and
its middleware answers a refused attempt. This module holds what axes lets a project choose:

- the client's address, from the trusted-proxy setting only (`client_address`);
- the account name, compared without case or surrounding spaces (`account_name`);
- a limit per lockout parameter: axes has one failure limit for all of them, we have one per account name and a
  higher one per address (`LoginLimitHandler`, `failure_limit`);
- the answer to a refused attempt: the login page with our message (`lockout_response`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind `OMEGA_TRUSTED_PROXY_COUNT` proxies that each append the address
    they received the request from to X-Forwarded-For, the hop that many from the right (the address the outermost
    trusted proxy saw). Hops further left were written by the client and are never used. A header with fewer hops
    than trusted proxies did not come through them: it is ignored, as Werkzeug's ProxyFix does."""
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.OMEGA_TRUSTED_PROXY_COUNT
    if count == 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    return hops[-count] if len(hops) >= count else remote


def account_name(request: HttpRequest, credentials: dict | None) -> str | None:
    """The account name an attempt is counted under: what was typed, without case or surrounding spaces, cut to fit
    axes' column (Django refuses longer names anyway)."""
    name = (credentials or {}).get("username")
    if name is None and request is not None:
        name = request.POST.get("username")
    return name.strip().lower()[:250] if name is not None else None


@dataclass(frozen=True)
class Count:
    parameter: str  # "username" or "ip_address"
    failures: int  # within the cool-off, counted from each record's latest failure
    limit: int
    latest: datetime | None  # the latest failure counted

    @property
    def share(self) -> float:
        return self.failures / self.limit


def _limits() -> dict[str, int]:
    return {
        "username": settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT,
        "ip_address": settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS,
    }


class LoginLimitHandler(AxesDatabaseHandler):
    """Axes' database handler with a limit per lockout parameter (5 per account name, 30 per address by default):
    an attempt is refused when either has reached its own limit. A successful login clears the account's failures
    only, so that logging in to one account does not clear an address that tried many."""

    def counts(self, request: HttpRequest, credentials: dict | None = None) -> list[Count]:
        limits = _limits()
        parameters = settings.AXES_LOCKOUT_PARAMETERS
        counts = []
        for parameter, attempts in zip(parameters, self.get_user_attempts(request, credentials), strict=True):
            totals = attempts.aggregate(failures=Sum("failures_since_start"), latest=Max("attempt_time"))
            counts.append(Count(parameter, totals["failures"] or 0, limits[parameter], totals["latest"]))
        return counts

    def nearest(self, request: HttpRequest, credentials: dict | None = None) -> Count:
        """The parameter nearest its limit: it is at or over its limit exactly when any parameter is."""
        return max(self.counts(request, credentials), key=lambda count: count.share)

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        return self.nearest(request, credentials).failures

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        deleted, _ = AccessAttempt.objects.filter(username=get_client_username(request, credentials)).delete()
        return deleted


def failure_limit(request: HttpRequest, credentials: dict | None) -> int:
    """AXES_FAILURE_LIMIT: the limit of the parameter `get_failures` counted (the one nearest its limit)."""
    return LoginLimitHandler().nearest(request, credentials).limit


LOCKED = "Too many failed logins for this account or from this address: try again in {minutes} minute{s}."


def lockout_response(request: HttpRequest, *_: object) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page again, with the lock and how long it lasts instead of a form error.
    (Axes passes the original response and the credentials, or on its asynchronous path only the credentials in
    the response's place: neither is needed here.)"""
    credentials = getattr(request, "axes_credentials", None)
    wait = get_cool_off(request).total_seconds()
    latest = [c.latest for c in LoginLimitHandler().counts(request, credentials) if c.failures >= c.limit and c.latest]
    if latest:  # the lock passes at the latest when the newest failure counted leaves the cool-off
        wait = max(0.0, (max(latest) + get_cool_off(request) - timezone.now()).total_seconds())
    minutes = max(1, math.ceil(wait / 60))
    context = {
        "form": AuthenticationForm(request, initial={"username": request.POST.get("username", "")}),
        "locked": LOCKED.format(minutes=minutes, s="s" if minutes != 1 else ""),
        "next": request.POST.get("next", ""),
    }
    return render(request, "registration/login.html", context)
