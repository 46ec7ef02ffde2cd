"""Data safety: a failed attempt is never exported, whatever its flags say; a save that dies half-way leaves the
annotation as it was; deleting a run is for admins only and asks first; secrets given to the app (the LLM API key,
passwords) never reach pages, stored calls or exports; URLs with credentials in them are refused."""

from __future__ import annotations

import json
import zipfile

import pytest

from dialogues.annotation.models import TurnAnnotation
from dialogues.annotation.services import TurnAnnotationInput, turn_annotation_save
from dialogues.corpora.export import corpus_export, version_path
from dialogues.corpora.services import override_record
from dialogues.library.models import Task
from dialogues.runs.keys import dialogue_key
from dialogues.runs.models import Dialogue, DialogueStatus, LLMCall, Run
from omega_web.roles import Role
from tests.factories import saved_corpus, served_run, simulated_run
from tests.support import llm_answers
from tests.support.llm_server import ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failed_attempt_is_never_exported_whatever_its_flags(demo_tasks, make_user):
    run = simulated_run(Task.objects.all()[:2], name="r")
    good, bad = list(run.dialogues.filter(status=DialogueStatus.FINISHED).order_by("pk")[:2])
    # the worst case: a dialogue that failed but carries every mark of a good one
    Dialogue.objects.filter(pk=bad.pk).update(status=DialogueStatus.FAILED, failure_reason="the server kept failing",
                                              kept=True, filter_passed=True)  # fmt: skip
    curator = make_user(Role.CURATOR, username="cur")
    corpus = saved_corpus(user=curator, name="all", includes=[bad.pk], split="", kept_only=False, passed_only=False)
    for kind in ("simulated", "eval_split"):
        override_record(corpus_id=corpus.pk, kind=kind, reason="test", user=curator)
    version = corpus_export(corpus_id=corpus.pk, formats=["full"], created_by=curator)
    with zipfile.ZipFile(version_path(version)) as archive:
        name = next(n for n in archive.namelist() if n.endswith("omega_dialogues.jsonl"))
        keys = {json.loads(line)["key"] for line in archive.read(name).decode().splitlines() if line.strip()}
    assert dialogue_key(good) in keys and dialogue_key(bad) not in keys


def test_a_save_that_dies_half_way_leaves_the_annotation_as_it_was(demo_tasks, make_user, monkeypatch):
    run = simulated_run([Task.objects.first()], name="r")
    turn = run.dialogues.first().turns.filter(action_type="speak").order_by("index").first()
    curator = make_user(Role.CURATOR, username="cur")
    saved = turn_annotation_save(turn_id=turn.pk, annotator=curator, version=0,
                                 data=TurnAnnotationInput(note="first note", quality=4))  # fmt: skip
    from dialogues.annotation import services as annotations

    def crash(**kwargs):  # the last write of the save: the row and its labels are written by then
        raise RuntimeError("the process died here")

    monkeypatch.setattr(annotations.Correction.objects, "create", crash)
    with pytest.raises(RuntimeError):
        turn_annotation_save(turn_id=turn.pk, annotator=curator, version=saved.version,
                             data=TurnAnnotationInput(note="second note", quality=1, corrected_text="Changed words.",
                                                      correction_reason="typo"))  # fmt: skip
    monkeypatch.undo()
    row = TurnAnnotation.objects.get(pk=saved.pk)
    assert (row.note, row.quality, row.corrected_text, row.version) == ("first note", 4, "", saved.version)
    assert not turn.corrections.exists()


def test_deleting_a_run_is_for_admins_and_asks_first(demo_tasks, client_for):
    run = simulated_run([Task.objects.first()], name="r")
    url = f"/admin/dialogues/run/{run.pk}/delete/"
    for role in (Role.CURATOR, Role.RESEARCHER):
        answer = client_for(role).post(url, {"post": "yes"})
        assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    admin = client_for(Role.ADMIN)
    page = admin.get(url)
    assert page.status_code == 200 and "Are you sure" in page.content.decode()
    assert Run.objects.filter(pk=run.pk).exists()  # asking deletes nothing
    assert admin.post(url, {"post": "yes"}).status_code == 302
    assert not Run.objects.filter(pk=run.pk).exists() and not Dialogue.objects.filter(run_id=run.pk).exists()


def test_the_api_key_is_used_but_never_shown_stored_or_exported(demo_tasks, settings, make_user, client_for):
    secret = "sk-omega-test-4f1c9e"
    settings.OMEGA_LLM_API_KEY = secret
    task = Task.objects.get(external_id="omega-demo-task-04")
    server = ScriptedLLMServer(responder=llm_answers.responder(lambda turn, n: llm_answers.uniform(9, 9, n, end=True)))
    with server:
        run = served_run(server, [task], name="k", config={"max_turns": 8})
    seen = [r for r in server.requests if r["path"].endswith("/chat/completions")]
    assert seen and all(r["authorization"] == f"Bearer {secret}" for r in seen)  # the key is used
    dialogue = run.dialogues.first()
    stored = json.dumps(list(LLMCall.objects.values()), default=str) + json.dumps(list(Run.objects.values()),
                                                                                    default=str)  # fmt: skip
    assert secret not in stored
    viewer = client_for(Role.ADMIN)
    call = LLMCall.objects.filter(dialogue=dialogue).first()
    for url in (f"/runs/{run.pk}/", f"/dialogues/{dialogue.pk}/", f"/dialogues/{dialogue.pk}/calls/{call.pk}/",
                "/runs/", f"/runs/{run.pk}/report/"):  # fmt: skip
        assert secret not in viewer.get(url).content.decode(), url


@pytest.mark.parametrize("url", ["http://user:pw@gpu1:8000", "https://token@host/v1"])
def test_urls_with_credentials_are_refused(url, client_for):
    from evaluation.forms import BenchmarkForm

    form = BenchmarkForm({"setting": "self_play", "agent_model": "m", "agent_urls": url, "max_turns": 20, "seed": 0})
    assert not form.is_valid() and "credentials" in str(form.errors)


def test_a_zip_bomb_is_refused_before_anything_is_read(tmp_path, settings):
    import zipfile as zf

    from dialogues.corpus_import.services import corpus_import_create
    from dialogues.library.services import import_job_run

    settings.OMEGA_CORPUS_MAX_UNCOMPRESSED_BYTES = 10 * 1024 * 1024
    bomb = tmp_path / "corpus.zip"
    with zf.ZipFile(bomb, "w", compression=zf.ZIP_DEFLATED) as archive:
        archive.writestr("omega_dialogues.jsonl", b"\n" * (50 * 1024 * 1024))  # 50 MB of nothing, ~50 KB zipped
    assert bomb.stat().st_size < 1024 * 1024
    job = import_job_run(job_id=corpus_import_create(created_by=None, origin="cli", path=bomb, enqueue=False).pk)
    assert job.status == "failed" and not Run.objects.exists()
    assert any("expands to 52,428,800 bytes" in str(p) for p in job.problems), job.problems
