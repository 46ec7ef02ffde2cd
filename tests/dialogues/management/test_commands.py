"""The set-up commands `make run` calls: ensure_admin and load_demo."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from dialogues.library.models import ImportJob, Task
from omega_web.roles import Role, user_role

pytestmark = pytest.mark.django_db


def run(command: str) -> str:
    out = io.StringIO()
    call_command(command, stdout=out)
    return out.getvalue()


def test_admin_password_is_generated_and_shown_once(monkeypatch):
    monkeypatch.delenv("OMEGA_ADMIN_PASSWORD", raising=False)
    first = run("ensure_admin")
    password = first.split("Password (shown only this once): ")[1].split()[0]
    user = User.objects.get(username="admin")
    assert user.check_password(password) and user_role(user) == Role.ADMIN
    second = run("ensure_admin")
    assert password not in second and "exists (password unchanged)" in second
    assert User.objects.get(username="admin").check_password(password)


def test_admin_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("OMEGA_ADMIN_PASSWORD", "from-the-env-123")
    out = run("ensure_admin")
    assert "from-the-env-123" not in out
    assert User.objects.get(username="admin").check_password("from-the-env-123")
    monkeypatch.setenv("OMEGA_ADMIN_PASSWORD", "changed-later-456")
    assert "password set from OMEGA_ADMIN_PASSWORD" in run("ensure_admin")
    assert User.objects.get(username="admin").check_password("changed-later-456")


def test_demo_tasks_load_once_and_cover_every_relationship():
    call_command("load_demo", verbosity=0)
    first = set(Task.objects.values_list("external_id", "updated_at"))
    call_command("load_demo", verbosity=0)
    assert set(Task.objects.values_list("external_id", "updated_at")) == first
    assert {t.scenario.relationship for t in Task.objects.select_related("scenario")} == set("012345")
    assert Task.objects.filter(scenario__codename="library_roof_fund", hard=True).exists()
    assert set(Task.objects.values_list("source", "split").distinct()) == {("omega-demo", "train")}
    assert ImportJob.objects.filter(origin="cli", status="succeeded").count() == 1  # the second run skipped
    assert "already loaded" in run("load_demo")
