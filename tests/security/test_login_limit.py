"""Login attempts are limited (django-axes, omega_web/login.py): too many failures for one account name, or from one
address, lock further attempts (the right password too) for the window, with a clear message; other accounts and
addresses are not affected; the lock passes and a successful login clears the account's count. The address comes
from the trusted-proxy setting only: rotating X-Forwarded-For does not escape the per-address count. Fails if the
limits are removed from the login path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client

from omega_web.roles import Role
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed logins for this account or from this address"
WRONG = "Please enter a correct username and password"


def attempt(username: str, password: str, address: str = "10.0.0.1", forwarded: str | None = None):
    headers = {"REMOTE_ADDR": address}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return Client(**headers).post("/accounts/login/", {"username": username, "password": password})


def logged_in(answer) -> bool:
    return answer.status_code == 302 and not answer["Location"].startswith("/accounts/login/")


def refused(answer) -> bool:
    text = answer.content.decode()
    return answer.status_code == 200 and LOCKED in text and WRONG not in text


def age(username: str | None = None, *, by: timedelta) -> None:
    """Move recorded failures back in time (for one account name, or all)."""
    attempts = AccessAttempt.objects.all() if username is None else AccessAttempt.objects.filter(username=username)
    for row in attempts:
        row.attempt_time -= by
        row.save(update_fields=["attempt_time"])


def test_an_account_is_locked_after_repeated_failures(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
    make_user(Role.VIEWER, username="vera")
    make_user(Role.VIEWER, username="other")
    for _ in range(4):
        answer = attempt("vera", "wrong password")
        assert answer.status_code == 200 and WRONG in answer.content.decode() and LOCKED not in answer.content.decode()
    fifth = attempt("vera", "wrong password")  # the failure that reaches the limit says so (axes' model)
    assert refused(fifth) and "15 minutes" in fifth.content.decode()
    locked = attempt("Vera ", PASSWORD, address="10.0.0.2")  # the right password, another address, other case
    assert refused(locked) and "15 minutes" in locked.content.decode()
    assert logged_in(attempt("other", PASSWORD))  # another account is not affected
    age("vera", by=timedelta(minutes=15, seconds=1))
    assert logged_in(attempt("vera", PASSWORD))  # the lock passed
    assert not AccessAttempt.objects.filter(username="vera").exists()  # and success clears the count


def test_a_refused_attempt_does_not_extend_the_lock(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = 2
    make_user(Role.VIEWER, username="vera")
    attempt("vera", "x")
    attempt("vera", "x")
    age("vera", by=timedelta(minutes=10))
    answer = attempt("vera", "y")
    assert refused(answer) and "5 minutes" in answer.content.decode()
    age("vera", by=timedelta(minutes=5, seconds=1))
    assert logged_in(attempt("vera", PASSWORD))


def test_an_address_is_locked_after_failures_on_many_accounts(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    make_user(Role.VIEWER, username="vera")
    for name in ("a", "b", "c"):
        attempt(name, "guess", address="10.9.9.9")
    assert refused(attempt("vera", PASSWORD, address="10.9.9.9"))
    assert logged_in(attempt("vera", PASSWORD, address="10.1.1.1"))


def test_a_success_clears_the_account_not_the_address(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    make_user(Role.VIEWER, username="mallory")
    make_user(Role.VIEWER, username="vera")
    for name in ("a", "b", "c"):
        attempt(name, "guess", address="10.9.9.9")
    assert logged_in(attempt("mallory", PASSWORD, address="10.9.9.9"))  # one's own account, from the same address
    attempt("d", "guess", address="10.9.9.9")  # the fourth failure from this address: still counted
    assert refused(attempt("vera", PASSWORD, address="10.9.9.9"))


def test_the_window_restarts_the_count(make_user, settings):
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    make_user(Role.VIEWER, username="vera")
    attempt("vera", "x")
    attempt("vera", "x")
    age("vera", by=timedelta(hours=1))
    assert WRONG in attempt("vera", "x").content.decode()  # a new window: one failure, not three
    assert logged_in(attempt("vera", PASSWORD))


# --- the address behind a proxy --------------------------------------------------------------------------------

PROXY = "172.16.0.1"  # the reverse proxy: REMOTE_ADDR of every request that comes through it


def test_rotating_x_forwarded_for_does_not_reset_the_address_count(make_user, settings):
    # One trusted proxy appends the address it saw: the client's own hops stay on the left, whatever they say.
    settings.OMEGA_TRUSTED_PROXY_COUNT = 1
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    make_user(Role.VIEWER, username="vera")
    for i, name in enumerate(("a", "b", "c", "d")):
        attempt(name, "guess", address=PROXY, forwarded=f"198.51.100.{i}, 203.0.113.7")
    rows = AccessAttempt.objects.values_list("ip_address", flat=True)
    assert set(rows) == {"203.0.113.7"}
    assert refused(attempt("vera", PASSWORD, address=PROXY, forwarded="192.0.2.99, 203.0.113.7"))
    assert logged_in(attempt("vera", PASSWORD, address=PROXY, forwarded="192.0.2.99, 203.0.113.8"))


def test_rotating_x_forwarded_for_does_not_escape_the_account_lock(make_user, settings):
    settings.OMEGA_TRUSTED_PROXY_COUNT = 1
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    make_user(Role.VIEWER, username="vera")
    for i in range(3):  # three addresses, as a client could claim, or as a botnet would have
        attempt("vera", "guess", address=PROXY, forwarded=f"10.0.{i}.1, 203.0.113.{i}")
    assert refused(attempt("vera", PASSWORD, address=PROXY, forwarded="10.0.9.9, 203.0.113.50"))


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(make_user, settings):
    settings.OMEGA_TRUSTED_PROXY_COUNT = 0
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    make_user(Role.VIEWER, username="vera")
    attempt("a", "guess", address="10.5.5.5", forwarded="198.51.100.1")
    attempt("b", "guess", address="10.5.5.5", forwarded="198.51.100.2")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.5.5.5"}
    assert refused(attempt("vera", PASSWORD, address="10.5.5.5", forwarded="198.51.100.3"))


def test_two_trusted_proxies_and_a_header_that_did_not_come_through_them(make_user, settings):
    settings.OMEGA_TRUSTED_PROXY_COUNT = 2
    settings.OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    make_user(Role.VIEWER, username="vera")
    # Client → CDN (appends the client) → load balancer (appends the CDN) → us: the client is second from the right.
    attempt("a", "guess", address=PROXY, forwarded="1.2.3.4, 203.0.113.7, 192.0.2.1")
    attempt("b", "guess", address=PROXY, forwarded="5.6.7.8, 203.0.113.7, 192.0.2.2")
    # One hop only: it did not pass both proxies, so the header is ignored and REMOTE_ADDR counts.
    attempt("c", "guess", address="10.7.7.7", forwarded="203.0.113.7")
    assert sorted(AccessAttempt.objects.values_list("ip_address", flat=True)) == [
        "10.7.7.7",
        "203.0.113.7",
        "203.0.113.7",
    ]
    assert refused(attempt("vera", PASSWORD, address=PROXY, forwarded="9.9.9.9, 203.0.113.7, 192.0.2.3"))
