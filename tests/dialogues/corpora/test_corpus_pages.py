"""The corpus builder over HTTP and the command line: define a corpus with live counts, record an override,
export a version, download it streamed (curators only, a safe file name), and `export_corpus`."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from dialogues.annotation.labels import ensure_default_labels
from dialogues.annotation.models import Label
from dialogues.corpora.models import Corpus, CorpusVersion
from dialogues.library.models import Task
from omega_web.roles import Role
from tests.factories import CorpusVersionFactory, saved_corpus, simulated_run

pytestmark = pytest.mark.django_db(transaction=True)
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def _setup(db, settings, tmp_path):
    ensure_default_labels(Label)
    settings.OMEGA_EXPORT_DIR = tmp_path / "exports"


@pytest.fixture
def finished(demo_tasks):
    return simulated_run(
        Task.objects.filter(scenario__codename__in=["field_trip_seats", "vintage_bike_sale"]), name="for a corpus"
    )


def form_data(**changes):
    data = {"version": "0", "name": "Week 1", "split": "train", "kept_only": "on", "passed_only": "on",
            "exclude_simulated": "on", "exclude_human_turns": "on", "tasks": "", "includes": ""}  # fmt: skip
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_build_override_export_and_download(finished, client_for):
    curator = client_for(Role.CURATOR)
    counts = curator.post(reverse("corpus_counts"), form_data(), headers={"HX-Request": "true"}).content.decode()
    assert "<strong>0</strong> dialogues" in counts  # simulated dialogues are left out by default
    live = curator.post(reverse("corpus_counts"), form_data(exclude_simulated=None), headers={"HX-Request": "true"})
    body = live.content.decode()
    assert "<strong>2</strong> dialogues" in body and "2 simulated" in body and "record an override" in body

    saved = curator.post(reverse("corpus_new"), form_data(exclude_simulated=None, description=HOSTILE))
    corpus = Corpus.objects.get(name="Week 1")
    assert saved.status_code == 302 and saved["Location"] == reverse("corpus_detail", args=[corpus.pk])
    page = curator.get(saved["Location"]).content.decode()
    assert HOSTILE not in page and "Exporting it needs a recorded decision" in page
    sft = {"formats": ["sotopia-sft"], "corrections": "apply"}
    refused = curator.post(reverse("corpus_export", args=[corpus.pk]), sft, follow=True)
    assert "Not exported:" in refused.content.decode() and not CorpusVersion.objects.exists()

    curator.post(reverse("corpus_override", args=[corpus.pk]), {"kind": "simulated", "reason": "pipeline check"})
    exported = curator.post(
        reverse("corpus_export", args=[corpus.pk]),
        {"formats": ["sotopia-sft", "sharegpt"], "corrections": "apply"},
        follow=True,
    )
    assert "Version 1 frozen: 2 dialogues; writing its files." in exported.content.decode()
    version = CorpusVersion.objects.get()
    download = curator.get(reverse("version_download", args=[version.pk]))
    assert download.status_code == 200 and download.streaming
    assert download["Content-Disposition"] == 'attachment; filename="week-1-v1.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = sorted(archive.namelist())
    assert names == ["week-1-v1/dataset_info.json", "week-1-v1/manifest.json", "week-1-v1/sotopia_omega.jsonl",
                     "week-1-v1/sotopia_omega_sharegpt.jsonl"]  # fmt: skip
    manifest = json.loads(archive.read("week-1-v1/manifest.json"))
    assert manifest["overrides"][0]["reason"] == "pipeline check" and manifest["created_by"] == "curator-user"

    # annotators and viewers neither build nor download
    for role in (Role.ANNOTATOR, Role.VIEWER):
        client = client_for(role)
        assert client.get(reverse("version_download", args=[version.pk])).status_code == 403
        assert client.post(reverse("corpus_new"), form_data(name="x")).status_code == 403
        assert client.get(reverse("corpus_detail", args=[corpus.pk])).status_code == 200


def test_a_stored_path_cannot_leave_the_export_directory(finished, client_for, tmp_path):
    (tmp_path / "secret.txt").write_text("not for download")
    version = CorpusVersionFactory(corpus__name="tricky", number=1, path="../secret.txt", status="succeeded")
    answer = client_for(Role.CURATOR).get(reverse("version_download", args=[version.pk]))
    assert answer.status_code == 404


def test_export_corpus_command(finished, client_for, tmp_path):
    saved_corpus(user=None, name="cli")
    with pytest.raises(CommandError, match="simulated expert"):
        call_command("export_corpus", "cli", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no corpus named 'nope'"):
        call_command("export_corpus", "nope", stdout=io.StringIO())
    out = io.StringIO()
    call_command(
        "export_corpus", "cli", "--formats", "sotopia-sft,full", "--override", "simulated=smoke test",
        "--out", str(tmp_path / "out"), stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "cli v1: 2 dialogues" in text and "sotopia_omega.jsonl:" in text and "omega_dialogues.jsonl: 2 lines" in text
    assert (tmp_path / "out" / "cli-v1.zip").exists()
    out = io.StringIO()  # --out naming the export folder itself: nothing to copy, and no error
    exports = tmp_path / "exports"
    call_command("export_corpus", "cli", "--formats", "full", "--out", str(exports), stdout=out)
    assert f"Copied to {exports / 'cli-v2.zip'}" in out.getvalue() and (exports / "cli-v2.zip").exists()


def test_a_version_is_written_by_a_worker_and_downloadable_only_when_done(finished, client_for):
    from dialogues.corpora.export import corpus_version_build, corpus_version_request
    from dialogues.corpora.services import override_record

    corpus = saved_corpus(user=None, name="async")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=None)
    version = corpus_version_request(corpus_id=corpus.pk, formats=["sotopia-sft"])
    assert version.status == "pending" and len(version.dialogue_ids) == 2 and version.path == ""
    curator = client_for(Role.CURATOR)
    assert curator.get(reverse("version_download", args=[version.pk])).status_code == 404
    polling = curator.get(reverse("corpus_versions", args=[corpus.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in polling and "0 of 2 dialogues written" in polling
    built = corpus_version_build(version_id=version.pk)
    assert built.status == "succeeded" and built.written == 2 and built.manifest["files"]
    done = curator.get(reverse("corpus_versions", args=[corpus.pk])).content.decode()
    assert 'hx-trigger="every 1s"' not in done and "Download" in done
    assert curator.get(reverse("version_download", args=[version.pk])).status_code == 200
    # a build that fails says why and offers nothing to download
    broken = corpus_version_request(corpus_id=corpus.pk, formats=["sotopia-sft"])
    CorpusVersion.objects.filter(pk=broken.pk).update(options={"corrections": "apply", "bogus": 1})
    with pytest.raises(TypeError):
        corpus_version_build(version_id=broken.pk)
    broken.refresh_from_db()
    assert broken.status == "failed" and "bogus" in broken.error and broken.path == ""


def test_a_count_of_zero_names_the_filters_that_removed_the_dialogues(finished, client_for):
    curator = client_for(Role.CURATOR)
    body = curator.post(reverse("corpus_counts"), form_data(), headers={"HX-Request": "true"}).content.decode()
    assert "<strong>0</strong> dialogues" in body and "Nothing selected." in body
    # three finished attempts of two tasks: one attempt is not the kept one, and the two kept ones are simulated
    assert (
        "Of 3 finished dialogues, <strong>kept attempts only</strong> removed 1, "
        "<strong>simulated dialogues excluded</strong> removed 2." in body
    )
    assert 'train split only: <span class="muted">−0</span> → 3' in body
    # the first filter that empties the selection is named: an eval-only corpus loses both to the split
    body = curator.post(
        reverse("corpus_counts"), form_data(split="eval"), headers={"HX-Request": "true"}
    ).content.decode()
    assert "<strong>eval split only</strong> removed 3." in body and "simulated dialogues excluded</strong>" not in body
    # a selection that is not empty explains itself behind a click, and says nothing is missing
    body = curator.post(
        reverse("corpus_counts"), form_data(exclude_simulated=None), headers={"HX-Request": "true"}
    ).content.decode()
    assert "Nothing selected." not in body and "How the filters got here" in body


def test_an_inverted_goal_range_is_an_error_not_an_empty_corpus(finished, client_for):
    curator = client_for(Role.CURATOR)
    body = curator.post(
        reverse("corpus_counts"), form_data(goal_min="9", goal_max="5"), headers={"HX-Request": "true"}
    ).content.decode()
    assert "5 is below the lower bound 9: no dialogue can match" in body
    saved = curator.post(reverse("corpus_new"), form_data(goal_min="9", goal_max="5"))
    assert saved.status_code == 400 and not Corpus.objects.exists()


def test_runs_are_ticks_that_say_what_each_run_is(finished, client_for):
    page = client_for(Role.CURATOR).get(reverse("corpus_new")).content.decode()
    assert f'type="checkbox" name="runs" value="{finished.pk}"' in page
    assert f"#{finished.pk} for a corpus · dsi · simulated" in page


def longest_in_zip(path, name: str, measure) -> int:
    with zipfile.ZipFile(path) as archive:
        member = next(n for n in archive.namelist() if n.endswith("/" + name))
        return max(measure(json.loads(line)) for line in archive.read(member).decode().splitlines())


def test_the_version_page_says_where_dataset_info_is_and_the_cutoff_len_in_tokens(finished, client_for, settings):
    from dialogues.corpora.export import corpus_export, version_path
    from dialogues.corpora.lengths import Measure
    from dialogues.corpora.services import override_record
    from evaluation.embeddings import model_path

    settings.OMEGA_CUTOFF_TOKENIZER = str(model_path() / "tokenizer.json")  # a tokenizer every install has
    corpus = saved_corpus(user=None, name="Train me")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=None)
    version = corpus_export(corpus_id=corpus.pk, formats=["sotopia-sft"])
    with zipfile.ZipFile(version_path(version)) as archive:
        assert "train-me-v1/dataset_info.json" in archive.namelist()  # one folder, dataset_info.json inside
    # the longest record, counted again here with the same tokenizer from the zip's own lines
    longest = longest_in_zip(version_path(version), "sotopia_omega.jsonl", Measure.configured())
    page = client_for(Role.VIEWER).get(reverse("corpus_detail", args=[corpus.pk])).content.decode()
    assert "the zip holds one folder, <code>train-me-v1/</code>, with <code>dataset_info.json</code> in it" in page
    assert "set <code>dataset_dir</code> to that folder (<code>…/train-me-v1</code>)" in page
    assert (
        f"the longest record is <strong>{longest:,} tokens</strong> "
        f"(tokenizer <code>{settings.OMEGA_CUTOFF_TOKENIZER}</code>)" in page
    )
    assert f"a <code>cutoff_len</code> of at least {longest:,} keeps every record whole" in page
    assert "over 1,024 tokens (LLaMA-Factory's default cutoff_len)" in page


def test_without_a_tokenizer_the_version_page_measures_characters_and_says_why(finished, client_for, settings):
    from dialogues.corpora.export import corpus_export, version_path
    from dialogues.corpora.lengths import record_text
    from dialogues.corpora.services import override_record

    settings.OMEGA_CUTOFF_TOKENIZER = ""
    corpus = saved_corpus(user=None, name="No tokenizer")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=None)
    version = corpus_export(corpus_id=corpus.pk, formats=["sotopia-sft"])
    longest = longest_in_zip(version_path(version), "sotopia_omega.jsonl", lambda r: len(record_text(r)))
    page = client_for(Role.CURATOR).get(reverse("corpus_detail", args=[corpus.pk])).content.decode()
    assert f"the longest record is <strong>{longest:,} characters</strong>" in page
    assert "because no tokenizer configured (OMEGA_CUTOFF_TOKENIZER)" in page


def test_the_counts_follow_the_filters_before_the_corpus_has_a_name(finished, client_for):
    body = client_for(Role.CURATOR).post(
        reverse("corpus_counts"), form_data(name="", exclude_simulated=None), headers={"HX-Request": "true"}
    )
    assert "<strong>2</strong> dialogues" in body.content.decode() and "Name" not in body.content.decode()
