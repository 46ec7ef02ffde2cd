"""Login attempts are limited: too many failures for one account name, or from one address, lock further attempts
(the right password too) for the window, with a clear message; other accounts and addresses are not affected; the
lock passes and a successful login clears the count. Fails if the throttle is removed from the login view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from omega_web.models import LoginThrottle
from omega_web.roles import Role
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed logins for this account or from this address"


def attempt(username: str, password: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post("/accounts/login/", {"username": username, "password": password})


def logged_in(answer) -> bool:
    return answer.status_code == 302 and not answer["Location"].startswith("/accounts/login/")


def test_an_account_is_locked_after_repeated_failures(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
    make_user(Role.VIEWER, username="vera")
    make_user(Role.VIEWER, username="other")
    for _ in range(5):
        answer = attempt("vera", "wrong password")
        assert answer.status_code == 200 and LOCKED not in answer.content.decode()
    refused = attempt("Vera", PASSWORD, address="10.0.0.2")  # the right password, another address, other case
    assert (
        refused.status_code == 200 and LOCKED in refused.content.decode() and "15 minutes" in refused.content.decode()
    )
    assert logged_in(attempt("other", PASSWORD))  # another account is not affected
    LoginThrottle.objects.filter(key="user:vera").update(locked_until=timezone.now() - timedelta(seconds=1))
    assert logged_in(attempt("vera", PASSWORD))  # the lock passed
    assert not LoginThrottle.objects.filter(key="user:vera").exists()  # and success clears the count


def test_an_address_is_locked_after_failures_on_many_accounts(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    make_user(Role.VIEWER, username="vera")
    for name in ("a", "b", "c"):
        attempt(name, "guess", address="10.9.9.9")
    assert LOCKED in attempt("vera", PASSWORD, address="10.9.9.9").content.decode()
    assert logged_in(attempt("vera", PASSWORD, address="10.1.1.1"))


def test_the_window_restarts_the_count(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    make_user(Role.VIEWER, username="vera")
    attempt("vera", "x")
    attempt("vera", "x")
    LoginThrottle.objects.filter(key="user:vera").update(window_start=timezone.now() - timedelta(hours=1))
    attempt("vera", "x")  # a new window: one failure, not three
    assert logged_in(attempt("vera", PASSWORD))
