from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

from omega_web.celery import app as celery_app
from omega_web.roles import ROLE_ORDER, Role

from .factories import UserFactory
from .support.services import services_required


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests


@pytest.fixture(autouse=True)
def _eager_celery():
    """In-process tests run tasks synchronously; the running app never does (tests/scaled checks real workers)."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(scope="session", autouse=True)
def _stepping_loop_without_reconciler():
    """Eager tasks that step dialogues use the worker's process loop. In tests it runs without the periodic
    reconciler, which would otherwise touch the database from a background thread between tests."""
    from dialogues.runs import worker

    loop = worker.ProcessLoop(reconcile=False)
    worker._instance = loop
    yield
    worker._instance = None
    loop.stop()


@pytest.fixture
def sotopia_dir() -> Path:
    path = Path(django_settings.OMEGA_SOTOPIA_DIR)
    if not (path / "sotopia_agent_profiles.jsonl").exists():
        message = f"the shared SOTOPIA data is not at {path} (set OMEGA_SOTOPIA_DIR)"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(role: Role | None, username: str | None = None) -> User:
        return UserFactory(username=username or f"{role or 'norole'}-user", role=role)

    return make


@pytest.fixture
def client_for(make_user) -> Callable[[Role | None], Client]:
    """A logged-in test client for a role (None: an account without a role)."""

    def client(role: Role | None) -> Client:
        c = Client()
        c.force_login(make_user(role))
        return c

    return client


@pytest.fixture
def all_roles() -> tuple[Role, ...]:
    return ROLE_ORDER


@pytest.fixture
def imported_sotopia(db, sotopia_dir):
    from django.core.management import call_command

    call_command("import_sotopia", sotopia_dir, verbosity=0)


@pytest.fixture
def demo_tasks(db):
    from django.core.management import call_command

    call_command("load_demo", verbosity=0)
