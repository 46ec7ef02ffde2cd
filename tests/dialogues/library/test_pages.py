"""The library pages and the upload form, as a logged-in user sees them."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dialogues.library.models import AgentProfile, ImportJob, ImportStatus, Task
from omega_web.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client_for):
    return client_for(Role.VIEWER)


@pytest.fixture
def researcher(client_for):
    return client_for(Role.RESEARCHER)


def test_library_lists_tasks_with_pagination(imported_sotopia, viewer):
    page = viewer.get(reverse("task_list"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<strong>450</strong> tasks" in html
    assert "Page 1 of 18" in html
    assert html.count('class="codename"') == 25
    last = viewer.get(reverse("task_list"), {"page": 18}).content.decode()
    assert "Page 18 of 18" in last and last.count('class="codename"') == 25  # 450 = 18 x 25


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"hard": "1"}, 70, id="hard"),
        pytest.param({"hard": "0"}, 380, id="not-hard"),
        pytest.param({"split": "eval"}, 450, id="split"),
        pytest.param({"split": "train"}, 0, id="other-split"),
        pytest.param({"relationship": "0"}, None, id="relationship"),
        pytest.param({"codename": "donate_funds"}, 5, id="codename"),
        pytest.param({"source": "sotopia", "hard": "1", "codename": "donate_funds"}, 5, id="combined"),
        pytest.param({"scenario_source": "craigslist_bargains"}, None, id="scenario-source"),
    ],
)
def test_library_filters(imported_sotopia, viewer, params, expected):
    if expected is None:
        key, value = next(iter(params.items()))
        field = {"relationship": "scenario__relationship", "scenario_source": "scenario__source"}[key]
        expected = Task.objects.filter(**{field: value}).count()
        assert 0 < expected < 450
    html = viewer.get(reverse("task_list"), params).content.decode()
    assert f"<strong>{expected}</strong> task" in html


def test_library_search_over_codename_text_and_names(imported_sotopia, viewer):
    agent = AgentProfile.objects.first()
    expected = Task.objects.filter(agent1=agent).count() + Task.objects.filter(agent2=agent).count()
    html = viewer.get(reverse("task_list"), {"q": agent.last_name}).content.decode()
    assert f"<strong>{expected}</strong> task" in html
    html = viewer.get(reverse("task_list"), {"q": "donate_funds"}).content.decode()
    assert "<strong>5</strong> tasks" in html
    html = viewer.get(reverse("task_list"), {"q": "zzznothingmatcheszzz"}).content.decode()
    assert "No task matches these filters." in html


def test_htmx_request_gets_only_the_results_fragment(imported_sotopia, viewer):
    answer = viewer.get(reverse("task_list"), {"hard": "1"}, headers={"HX-Request": "true"})
    html = answer.content.decode()
    assert html.lstrip().startswith('<section id="task-results"')
    assert "<html" not in html and "<strong>70</strong> tasks" in html


def test_task_page_shows_both_characters_private_goals_and_agent_views(imported_sotopia, viewer):
    task = Task.objects.select_related("scenario", "agent1", "agent2").filter(scenario__codename="donate_funds").first()
    html = viewer.get(reverse("task_detail", args=[task.pk])).content.decode()
    assert task.agent1.full_name in html and task.agent2.full_name in html
    assert html.count('aria-label="Private goal of agent') == 2
    assert "What agent 1 sees" in html and "What agent 2 sees" in html and "What the judges see" in html
    for viewer_key, hidden in [("agent1", 1), ("agent2", 0)]:
        tab = viewer.get(reverse("task_context", args=[task.pk, viewer_key]), headers={"HX-Request": "true"})
        text = tab.content.decode()
        assert text.lstrip().startswith('<section id="context-tabs"')
        assert f"{task.agents[hidden].full_name}&#x27;s goal: Unknown" in text
    judge = viewer.get(reverse("task_context", args=[task.pk, "judge"])).content.decode()
    assert "Unknown" not in judge.split('class="prompt"')[1]
    assert viewer.get(reverse("task_context", args=[task.pk, "nobody"])).status_code == 404


def test_agent_page_lists_its_tasks(imported_sotopia, viewer):
    agent = AgentProfile.objects.first()
    html = viewer.get(reverse("agent_detail", args=[agent.pk])).content.decode()
    n = Task.objects.filter(agent1=agent).count() + Task.objects.filter(agent2=agent).count()
    assert f"Tasks with {agent.first_name} ({n})" in html


def test_missing_objects_are_404(viewer):
    assert viewer.get(reverse("task_detail", args=[999999])).status_code == 404
    assert viewer.get(reverse("import_detail", args=[999999])).status_code == 404


# --- upload --------------------------------------------------------------------------------------------


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def sotopia_uploads(sotopia_dir) -> dict[str, SimpleUploadedFile]:
    names = {
        "agents": "sotopia_agent_profiles.jsonl",
        "scenarios": "sotopia_environment_profiles.jsonl",
        "relationships": "sotopia_relationship_profiles.jsonl",
        "tasks": "sotopia_env_agent_combo_storages.jsonl",
        "hard": "sotopia_hard_subset_derived.json",
    }
    return {kind: upload(name, (sotopia_dir / name).read_bytes()) for kind, name in names.items()}


def test_upload_imports_through_a_job(sotopia_dir, researcher, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = researcher.post(
            reverse("import_create"), {**sotopia_uploads(sotopia_dir), "split": "eval", "source": "sotopia"}
        )
    job = ImportJob.objects.get()
    assert answer.status_code == 302 and answer["Location"] == reverse("import_detail", args=[job.pk])
    assert job.status == ImportStatus.SUCCEEDED and job.origin == "upload"
    assert job.counts["library"] == {"agents": 40, "scenarios": 90, "relationships": 120, "tasks": 450, "hard": 70}
    html = researcher.get(answer["Location"]).content.decode()
    assert "succeeded" in html and "450 tasks (70 hard)" in html


def test_bad_upload_lists_every_problem_and_imports_nothing(
    sotopia_dir, researcher, django_capture_on_commit_callbacks
):
    files = sotopia_uploads(sotopia_dir)
    rows = (sotopia_dir / "sotopia_agent_profiles.jsonl").read_text().splitlines()
    broken = json.loads(rows[2])
    del broken["age"]
    rows[2] = json.dumps(broken)
    rows[5] = rows[5][:40]
    files["agents"] = upload("my agents.jsonl", "\n".join(rows).encode())
    with django_capture_on_commit_callbacks(execute=True):
        researcher.post(reverse("import_create"), {**files, "split": "eval", "source": "sotopia"})
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.FAILED
    assert [(p["file"], p["line"], p["field"]) for p in job.problems] == [
        ("my agents.jsonl", 3, "age"),
        ("my agents.jsonl", 6, "(json)"),
    ]
    assert Task.objects.count() == 0 and AgentProfile.objects.count() == 0
    html = researcher.get(reverse("import_detail", args=[job.pk])).content.decode()
    assert "Nothing was imported." in html and "my agents.jsonl" in html


def test_upload_needs_a_file_and_respects_the_size_limit(researcher, settings):
    answer = researcher.post(reverse("import_create"), {"split": "eval", "source": "sotopia"})
    assert answer.status_code == 400 and b"Choose at least one file" in answer.content
    settings.OMEGA_UPLOAD_MAX_BYTES = 1000
    answer = researcher.post(
        reverse("import_create"), {"agents": upload("a.jsonl", b"x" * 2000), "split": "eval", "source": "sotopia"}
    )
    assert answer.status_code == 400 and b"the limit per import is" in answer.content
    assert ImportJob.objects.count() == 0


def test_uploaded_markup_is_shown_as_text(researcher, django_capture_on_commit_callbacks):
    agents = [
        {
            "agent_id": f"x{i}",
            "first_name": f"<script>alert({i})</script>",
            "last_name": "<img src=x onerror=alert(1)>",
            "age": 30,
            "occupation": "",
            "gender": "",
            "gender_pronoun": "",
            "public_info": "",
            "personality_and_values": "",
            "secret": "",
        }
        for i in (1, 2)
    ]
    env = {
        "env_id": "e1",
        "codename": "xss",
        "scenario": "<b onclick=alert(2)>hi</b>",
        "agent_goals": ["<a href='javascript:alert(3)'>g1</a>", "g2"],
        "relationship": "0",
    }
    combo = {"combo_id": "c1", "env_id": "e1", "agent_ids": ["x1", "x2"]}
    files = {
        "agents": upload("a.jsonl", "\n".join(json.dumps(a) for a in agents).encode()),
        "scenarios": upload("e.jsonl", json.dumps(env).encode()),
        "tasks": upload("c.jsonl", json.dumps(combo).encode()),
    }
    with django_capture_on_commit_callbacks(execute=True):
        researcher.post(reverse("import_create"), {**files, "split": "train", "source": "hostile"})
    task = Task.objects.get()
    for url in [
        reverse("task_list"),
        reverse("task_detail", args=[task.pk]),
        reverse("task_context", args=[task.pk, "judge"]),
    ]:
        html = researcher.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html and "<b onclick" not in html
        assert "href='javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in researcher.get(reverse("task_list")).content.decode()


def test_task_page_renders_goal_tags_as_text_and_marks_judges_only_scenario_text(demo_tasks, viewer):
    task = Task.objects.get(external_id="omega-demo-task-06")  # leaving_the_coast: a judges-only sentence
    html = viewer.get(reverse("task_detail", args=[task.pk])).content.decode()
    assert "&lt;extra_info&gt;" not in html and "&lt;p viewer" not in html
    assert "judges only</span> Only one of them knows she will not be there next season." in html
    listing = viewer.get(reverse("task_list"), {"q": "leaving_the_coast"}).content.decode()
    assert "will not be there next season" not in listing and "&lt;p viewer" not in listing
    library = Task.objects.get(external_id="omega-demo-task-01")
    html = viewer.get(reverse("task_detail", args=[library.pk])).content.decode()
    assert "modest this year. Hint: ask for numbers" in html  # adjacent tags keep a space between sentences


def test_history_restore_gets_the_whole_page(imported_sotopia, viewer):
    answer = viewer.get(
        reverse("task_list"), {"hard": "1"}, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in answer.content.decode()
    assert "HX-Request" in answer["Vary"]


def test_a_refused_upload_through_htmx_answers_with_its_messages_only(sotopia_dir, researcher):
    """A browser cannot fill a file input again: the form is sent by htmx and a refusal changes only the messages,
    so the files stay chosen (issue 28). Without htmx it is the whole page, as before."""
    files = sotopia_uploads(sotopia_dir)
    bad = {**files, "split": "eval", "source": "not a slug!"}
    answer = researcher.post(reverse("import_create"), bad, headers={"HX-Request": "true"})
    body = answer.content.decode()
    assert answer.status_code == 400 and not ImportJob.objects.exists()
    assert 'id="import-form-errors" hx-swap-oob="true"' in body and "Collection:" in body
    assert 'type="file"' not in body and "<form" not in body  # nothing that would replace the chosen files
    page = researcher.post(reverse("import_create"), {**sotopia_uploads(sotopia_dir), "split": "eval", "source": "x y"})
    assert page.status_code == 400 and 'type="file"' in page.content.decode()
    done = researcher.post(
        reverse("import_create"),
        {**sotopia_uploads(sotopia_dir), "split": "eval", "source": "sotopia"},
        headers={"HX-Request": "true"},
    )
    job = ImportJob.objects.get()
    assert done.status_code == 204 and done["HX-Redirect"] == reverse("import_detail", args=[job.pk])
