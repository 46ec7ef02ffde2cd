"""Every URL, as anonymous, as an account without a role and as each role, against the permission matrix."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from dialogues.corpora.models import Corpus, CorpusVersion
from dialogues.engine.config import RunConfig
from dialogues.library.models import AgentProfile, ImportJob, Task
from dialogues.llm.backends import configured_backend
from dialogues.runs.lifecycle import run_create
from dialogues.runs.models import LLMCall, Turn
from evaluation.benchmark import benchmark_create
from evaluation.models import EvaluationJob
from omega_web.roles import ROLE_ORDER, Capability, Role, permission_matrix_markdown, role_capabilities

pytestmark = pytest.mark.django_db

# URLs that answer without a capability (logged in or not, as stated).
NO_CAPABILITY = {
    "login": "anonymous ok",
    "healthz": "anonymous ok",
    "logout": "post only",
    "password_change": "any account",
    "password_change_done": "any account",
}


def walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name}" if entry.name else None, entry.callback


def app_urls():
    """(name, view) of every URL outside Django admin and static files."""
    return [(name, view) for route, name, view in walk(get_resolver().url_patterns) if not route.startswith("admin/")]


@pytest.fixture
def samples(demo_tasks, make_user, settings, tmp_path):
    task = Task.objects.first()
    job = ImportJob.objects.first()
    run = run_create(
        created_by=None,
        name="sample",
        config=RunConfig(),
        tasks=[task],
        backend=configured_backend(simulated=True),
        start_paused=True,
    )
    dialogue = run.dialogues.get()
    call = LLMCall.objects.create(dialogue=dialogue, turn_index=0, step_attempt=1, purpose="act", messages=[])
    settings.OMEGA_EXPORT_DIR = tmp_path
    (tmp_path / "sample-v1.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    corpus = Corpus.objects.create(name="sample")
    version = CorpusVersion.objects.create(corpus=corpus, number=1, path="sample-v1.zip", status="succeeded")
    turn = Turn.objects.create(dialogue=dialogue, index=0, speaker=0, action_type="speak", argument="hi", branch="NSC")
    evaluation = EvaluationJob.objects.create(scope="run", run=run, dialogue_ids=[dialogue.pk], metrics=["sdiv"])
    bench = benchmark_create(name="b", setting="self_play", agent=configured_backend(simulated=True), reference=None,
                             tasks=[task])  # fmt: skip
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
        "corpus": corpus.pk,
        "version": version.pk,
    }


def concrete_url(name: str, samples: dict[str, int]) -> str:
    kwargs = {}
    possibilities = get_resolver().reverse_dict.getlist(name)
    params = possibilities[0][0][0][1] if possibilities else []
    for param in params:
        if param == "pk":
            kind = name.split("_")[0]
            assert kind in samples, f"add a sample object for URL {name!r} to tests/test_permissions.py"
            kwargs["pk"] = samples[kind]
        elif param == "viewer":
            kwargs["viewer"] = "agent1"
        elif param == "call_id":
            kwargs["call_id"] = samples["call"]
        elif param == "table":
            kwargs["table"] = "sif"
        elif param == "action":
            kwargs["action"] = "pause"  # harmless on a paused sample run
        else:
            raise AssertionError(f"URL {name!r} has a parameter {param!r} this test cannot fill yet")
    return reverse(name, kwargs=kwargs)


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
