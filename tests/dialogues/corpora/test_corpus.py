"""Corpora: selection (filters, includes, excludes, verdicts), the overrides eval-split and simulated dialogues need,
every export format against its golden file, corrections applied or cut, and the frozen version with its manifest.

Golden files are in tests/dialogues/corpora/golden/; after a deliberate change of a format, rewrite them with
`OMEGA_UPDATE_GOLDEN=1 python -m pytest tests/dialogues/corpora/test_corpus.py` and read the diff before committing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import pytest

from dialogues.annotation.labels import ensure_default_labels
from dialogues.annotation.models import Label
from dialogues.annotation.services import (
    adjudicate,
)
from dialogues.corpora.export import (
    OverrideNeeded,
    corpus_export,
    corpus_version_build,
    corpus_version_request,
    version_path,
)
from dialogues.corpora.formats import ExportOptions
from dialogues.corpora.models import VersionStatus
from dialogues.corpora.selection import CorpusFilters, counts, selected
from dialogues.corpora.services import override_record
from dialogues.engine import prompts
from dialogues.library.models import Split, Task
from dialogues.runs.keys import dialogue_key
from dialogues.runs.models import Dialogue
from tests.factories import CORRECTED, saved_corpus, scenario_tasks, simulated_run
from tests.support.clock import deadlines_clock_jumps

pytestmark = pytest.mark.django_db(transaction=True)
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _setup(db, settings, tmp_path):
    ensure_default_labels(Label)
    settings.OMEGA_EXPORT_DIR = tmp_path / "exports"


def normalised(text: str) -> str:
    """Database ids, clock times and the built-in prompt set's hash (it changes whenever a prompt is edited) vary;
    the golden files hold placeholders."""
    text = re.sub(r'"(dialogue|rejected_dialogue|id)": \d+', r'"\1": 0', text)
    text = re.sub(r'"(prompt_set_version|version)": "[0-9a-f]{12}"', r'"\1": "<prompt set>"', text)
    text = re.sub(
        r'"(key|dialogue|rejected_dialogue)": "omega-[0-9a-f]+/(dialogue|run)/\d+"', r'"\1": "<instance>/\2/0"', text
    )
    return re.sub(r'"(submitted_at|decided_at|at|created_at)": "[^"]+"', r'"\1": "<time>"', text)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = normalised(text)
    if os.environ.get("OMEGA_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with OMEGA_UPDATE_GOLDEN=1 once and read it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def unzip(version) -> dict[str, str]:
    with zipfile.ZipFile(version_path(version)) as archive:
        return {Path(n).name: archive.read(n).decode("utf-8") for n in archive.namelist()}


def test_every_format_matches_its_golden_file(corpus_data, people):
    corpus = saved_corpus(user=people["cur"], name="golden")
    with pytest.raises(OverrideNeeded, match="simulated expert"):
        corpus_export(corpus_id=corpus.pk, created_by=people["cur"])
    override_record(corpus_id=corpus.pk, kind="simulated", reason="golden-file test", user=people["cur"])
    version = corpus_export(corpus_id=corpus.pk, created_by=people["cur"])
    files = unzip(version)
    assert set(files) == {
        "manifest.json", "dataset_info.json", "sotopia_omega.jsonl", "sotopia_omega_sharegpt.jsonl",
        "sotopia_omega_openai.jsonl", "omega_tasks.jsonl", "omega_dialogues.jsonl", "sotopia_omega_dpo.jsonl",
        "sotopia_omega_kto.jsonl",
    }  # fmt: skip
    for name in sorted(files):
        if name != "manifest.json":
            check_golden(name, files[name])
    # the manifest: what was frozen, by whom, with checksums that match the files
    manifest = json.loads(files["manifest.json"])
    assert manifest["corpus"] == "golden" and manifest["version"] == 1 and manifest["created_by"] == "cur"
    assert manifest["overrides"][0]["kind"] == "simulated" and manifest["overrides"][0]["reason"] == "golden-file test"
    assert manifest["models"] == ["simulated-expert"] and len(manifest["prompt_set_versions"]) == 1
    for name, facts in manifest["files"].items():
        assert hashlib.sha256(files[name].encode("utf-8")).hexdigest() == facts["sha256"], name
    assert manifest["counts"]["dialogues"] == 1 and manifest["counts"]["files"]["sotopia_omega.jsonl"] == len(
        files["sotopia_omega.jsonl"].splitlines()
    )


def test_an_export_past_its_deadline_is_marked_failed_with_the_reason(corpus_data, people, settings, monkeypatch):
    corpus = saved_corpus(user=people["cur"], name="golden")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="deadline test", user=people["cur"])
    version = corpus_version_request(corpus_id=corpus.pk, created_by=people["cur"])
    settings.OMEGA_EXPORT_DEADLINE_SECONDS = 30
    deadlines_clock_jumps(monkeypatch, seconds=60)  # the first check comes a minute after the build began
    with pytest.raises(Exception, match="past its deadline"):
        corpus_version_build(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == VersionStatus.FAILED
    assert version.error == "stopped: past its deadline of 30 s"
    assert version.finished_at is not None and version.path == ""
    assert not list((settings.OMEGA_EXPORT_DIR).glob("*.zip")), "nothing half-written is offered for download"
    # with time to spare, the same version is written after all
    settings.OMEGA_EXPORT_DEADLINE_SECONDS = 3600
    monkeypatch.undo()
    assert corpus_version_build(version_id=version.pk).status == VersionStatus.SUCCEEDED


def test_sft_records_follow_the_method(corpus_data, people):
    _run, dialogue = corpus_data
    corpus = saved_corpus(user=people["cur"], name="golden")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=people["cur"])
    files = unzip(corpus_export(corpus_id=corpus.pk, formats=["sotopia-sft"], created_by=people["cur"]))
    records = [json.loads(line) for line in files["sotopia_omega.jsonl"].splitlines()]
    turns = list(dialogue.turns.order_by("index"))
    assert len(records) == len(turns)  # one per action, leaves included
    assert all(r["input"] == "" and "You are at Turn #" in r["instruction"] for r in records)
    assert json.loads(records[4]["output"]) == {"action_type": "speak", "argument": CORRECTED}  # the curator's
    assert CORRECTED in records[5]["instruction"] and turns[4].argument not in records[5]["instruction"]
    assert "An annotator's idea." not in files["sotopia_omega.jsonl"]  # an annotator's correction is a proposal
    assert any(t.branch == "SSI" for t in turns)  # SSI turns were generated with the injected instruction…
    ssi = prompts.builtin().raw("ssi_instruction").strip()
    assert not any(ssi in r["instruction"] for r in records)  # …which no training record carries
    info = json.loads(files["dataset_info.json"])
    assert info == {
        "sotopia_omega": {
            "file_name": "sotopia_omega.jsonl",
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"},
        }
    }
    # the option to cut the dialogue at the first correction instead
    cut = unzip(
        corpus_export(
            corpus_id=corpus.pk,
            formats=["sotopia-sft"],
            options=ExportOptions(corrections="cut"),
            created_by=people["cur"],
        )
    )
    assert len(cut["sotopia_omega.jsonl"].splitlines()) == 4


def test_selection_filters_verdicts_and_manual_changes(corpus_data, people, demo_tasks):
    _run, dialogue = corpus_data
    other = simulated_run(scenario_tasks("library_roof_fund"), name="library_roof_fund")  # hard, several attempts
    everything = CorpusFilters(split="", kept_only=False, passed_only=False, exclude_simulated=False)
    all_ids = set(selected(everything, [], []).values_list("pk", flat=True))
    finished = set(other.dialogues.filter(status="finished").values_list("pk", flat=True))
    assert dialogue.pk in all_ids and all_ids >= finished
    accepted = CorpusFilters(split="", exclude_simulated=False, accepted_only=True)
    assert list(selected(accepted, [], []).values_list("pk", flat=True)) == [dialogue.pk]
    adjudicate(dialogue_id=dialogue.pk, curator=people["cur"], decision="reject", note="", version=0)
    assert not selected(accepted, [], []).exists()  # the curator's decision wins over the annotators'
    labelled = CorpusFilters(split="", exclude_simulated=False, exclude_labels=[Label.objects.get(name="parroting").pk])
    assert dialogue.pk not in set(selected(labelled, [], []).values_list("pk", flat=True))
    assert not selected(CorpusFilters(), [], []).exists()  # by default: train split, no simulated dialogues
    by_hand = selected(CorpusFilters(), [dialogue.pk], [])
    assert list(by_hand.values_list("pk", flat=True)) == [dialogue.pk]
    assert not selected(everything, [], list(all_ids)).exists()
    tally = counts(everything, [], [])
    assert tally.simulated == tally.dialogues and tally.needs()[-1] == "simulated"


def test_eval_split_needs_a_recorded_override(corpus_data, people):
    _run, dialogue = corpus_data
    Task.objects.filter(pk=dialogue.task_id).update(split=Split.EVAL)
    corpus = saved_corpus(user=people["cur"], name="golden", split="")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=people["cur"])
    with pytest.raises(OverrideNeeded, match="eval split"):
        corpus_export(corpus_id=corpus.pk, created_by=people["cur"])
    with pytest.raises(ValueError, match="needs a reason"):
        override_record(corpus_id=corpus.pk, kind="eval_split", reason=" ", user=people["cur"])
    override_record(corpus_id=corpus.pk, kind="eval_split", reason="held-out study", user=people["cur"])
    version = corpus_export(corpus_id=corpus.pk, formats=["full"], created_by=people["cur"])
    kinds = {o["kind"]: o for o in version.manifest["overrides"]}
    assert kinds["eval_split"]["reason"] == "held-out study" and kinds["eval_split"]["by"] == "cur"


def test_nothing_to_export_and_unknown_formats_are_refused(demo_tasks, people):
    corpus = saved_corpus(user=people["cur"], name="golden")
    with pytest.raises(ValueError, match="selects no dialogue"):
        corpus_export(corpus_id=corpus.pk, created_by=people["cur"])
    with pytest.raises(ValueError, match="unknown format"):
        corpus_export(corpus_id=corpus.pk, formats=["parquet"], created_by=people["cur"])
    assert not Dialogue.objects.exists()


def test_preference_pairs_from_attempts_share_their_prompt(demo_tasks, people):
    from dialogues.corpora.data import dialogues

    run = simulated_run(scenario_tasks("library_roof_fund"), name="library_roof_fund")
    task = Task.objects.filter(scenario__codename="library_roof_fund").order_by("id").first()
    kept = run.dialogues.get(task=task, kept=True)
    failed = list(run.dialogues.filter(task=task, filter_passed=False).order_by("attempt"))
    assert kept.filter_passed and failed  # the simulator needs three attempts on this task
    corpus = saved_corpus(user=people["cur"], name="pairs", tasks=[task.external_id], split="")
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=people["cur"])
    files = unzip(corpus_export(corpus_id=corpus.pk, formats=["preference"], created_by=people["cur"]))
    pairs = [json.loads(line) for line in files["sotopia_omega_dpo.jsonl"].splitlines()]
    assert {p["rejected_dialogue"] for p in pairs} == {dialogue_key(d) for d in failed}  # keys, stable elsewhere
    data = {d.key: d for d in dialogues([kept.pk, *(d.pk for d in failed)])}
    for pair in pairs:
        turn = pair["turn"]
        rejected = data[pair["rejected_dialogue"]]
        assert pair["instruction"] == data[dialogue_key(kept)].prompt(turn) == rejected.prompt(turn)  # the same history
        assert pair["chosen"] != pair["rejected"]
    kto = [json.loads(line) for line in files["sotopia_omega_kto.jsonl"].splitlines()]
    assert len(kto) == 2 * len(pairs) and [k["kto_tag"] for k in kto[:2]] == [True, False]
