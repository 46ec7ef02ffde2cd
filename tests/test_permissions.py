"""Every URL, as anonymous, as an account without a role and as each role, against the permission matrix."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from omega_web.roles import ROLE_ORDER, Capability, Role, permission_matrix_markdown, role_capabilities
from tests.support.urls import app_urls, concrete_url

pytestmark = pytest.mark.django_db

# URLs that answer without a capability (logged in or not, as stated).
NO_CAPABILITY = {
    "login": "anonymous ok",
    "healthz": "anonymous ok",
    "logout": "post only",
    "password_change": "any account",
    "password_change_done": "any account",
}


def test_every_app_view_declares_a_capability():
    missing = [
        name for name, view in app_urls() if name not in NO_CAPABILITY and not hasattr(view, "required_capability")
    ]
    assert missing == [], f"views without @requires(...): {missing}"


def test_anonymous_is_sent_to_login_everywhere(samples):
    client = Client()
    for name, _ in app_urls():
        url = concrete_url(name, samples)
        answer = client.get(url)
        if name in {"login", "healthz"}:
            assert answer.status_code == 200, name
        elif name == "logout":
            assert answer.status_code in {302, 405}, name
        else:
            assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/"), name


@pytest.mark.parametrize("role", [None, *ROLE_ORDER], ids=lambda r: r or "no-role")
def test_each_role_gets_what_the_matrix_says(samples, client_for, role):
    client = client_for(role)
    granted = role_capabilities(role) if role else frozenset()
    for name, view in app_urls():
        url = concrete_url(name, samples)
        answer = client.get(url)
        needed = getattr(view, "required_capability", None)
        if answer.status_code == 405 and needed:  # an action: the capability is checked first, so try it for real
            answer = client.post(url)
        if needed is None:
            assert answer.status_code in {200, 302, 405}, (name, answer.status_code)
            continue
        if needed in granted:
            assert answer.status_code in {200, 302}, (name, role, answer.status_code)
            if answer.status_code == 302:
                assert not answer["Location"].startswith("/accounts/login/"), name
        else:
            assert answer.status_code == 403, (name, role, answer.status_code)


@pytest.mark.parametrize("role", [None, *ROLE_ORDER], ids=lambda r: r or "no-role")
def test_django_admin_is_for_the_admin_role_only(samples, client_for, role):
    client = client_for(role)
    urls = [
        reverse("admin:index"),
        reverse("admin:auth_user_changelist"),
        reverse("admin:dialogues_task_changelist"),
        reverse("admin:dialogues_task_change", args=[samples["task"]]),
    ]
    for url in urls:
        answer = client.get(url)
        if role == Role.ADMIN:
            assert answer.status_code == 200, url
        else:
            assert answer.status_code == 302 and "/admin/login/" in answer["Location"], (url, role)


def test_admin_group_member_who_is_not_superuser_can_use_admin(make_user):
    user = make_user(Role.ADMIN, username="group-admin")
    assert not user.is_superuser and not user.is_staff
    client = Client()
    client.force_login(user)
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


def test_forbidden_page_explains_the_missing_role(samples, client_for):
    answer = client_for(Role.VIEWER).get(reverse("import_create"))
    assert answer.status_code == 403
    assert b"needs the researcher role or higher" in answer.content


def test_docs_show_the_matrix_the_code_enforces():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "permissions.md").read_text()
    assert permission_matrix_markdown() in doc


def test_roles_are_cumulative():
    for lower, higher in itertools.pairwise(ROLE_ORDER):
        assert role_capabilities(lower) < role_capabilities(higher)
    assert role_capabilities(Role.ADMIN) == frozenset(Capability)
