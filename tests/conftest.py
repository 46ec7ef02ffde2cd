from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

from omega_web.celery import app as celery_app
from omega_web.roles import ROLE_ORDER, Role

from .factories import SIMULATED, CorpusVersionFactory, LLMCallFactory, TurnFactory, UserFactory, created_run
from .support.services import services_required


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests


@pytest.fixture(autouse=True)
def _fresh_server_profiles():
    """Servers are probed once per process; a test's server may reuse an earlier test's port, so forget them."""
    from dialogues.llm import profile

    profile.forget_all()


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


@pytest.fixture
def samples(demo_tasks, make_user, settings, tmp_path) -> dict[str, int]:
    """One object of every kind a URL names (a paused run and its dialogue, a call, a turn, a corpus and its
    version, an evaluation job, a benchmark run…), by the kind's name: for walking every URL."""
    from dialogues.library.models import AgentProfile, ImportJob, Task
    from evaluation.benchmark import benchmark_create
    from evaluation.models import EvaluationJob

    task = Task.objects.first()
    job = ImportJob.objects.first()
    run = created_run([task], name="sample", config={"judge_samples": 5}, start_paused=True)
    dialogue = run.dialogues.get()
    call = LLMCallFactory(dialogue=dialogue)
    settings.OMEGA_EXPORT_DIR = tmp_path
    (tmp_path / "sample-v1.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    version = CorpusVersionFactory(corpus__name="sample", number=1, path="sample-v1.zip", status="succeeded")
    turn = TurnFactory(dialogue=dialogue, index=0, argument="hi")
    evaluation = EvaluationJob.objects.create(scope="run", run=run, dialogue_ids=[dialogue.pk], metrics=["sdiv"])
    bench = benchmark_create(name="b", setting="self_play", agent=SIMULATED, reference=None, tasks=[task])
    bench.dialogues.update(status="paused")
    bench.status = "paused"
    bench.save()
    return {
        "benchmark": bench.pk,
        "evaluation": evaluation.pk,
        "task": task.pk,
        "agent": AgentProfile.objects.first().pk,
        "import": job.pk,
        "run": run.pk,
        "dialogue": dialogue.pk,
        "call": call.pk,
        "turn": turn.pk,
        "corpus": version.corpus.pk,
        "version": version.pk,
    }
