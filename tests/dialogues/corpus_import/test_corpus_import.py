"""Importing corpora made elsewhere: the full-fidelity round trip, SOTOPIA SFT files of every shape (rebuilt tasks,
speakers, turns and goals; both perspectives merged), and bad or hostile files (precise errors, nothing imported,
or every bad record listed with "skip bad records")."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from dialogues.annotation.labels import ensure_default_labels
from dialogues.annotation.models import Label
from dialogues.annotation.services import adjudicate
from dialogues.corpora.export import corpus_export, version_path
from dialogues.corpora.formats import ExportOptions
from dialogues.corpora.services import override_record
from dialogues.corpus_import.services import corpus_import_create
from dialogues.library.models import AgentProfile, ImportJob, Scenario, Task
from dialogues.library.services import import_job_run
from dialogues.runs.models import Dialogue, LLMCall, Run, RunKind, StepRating, Turn
from omega_web.roles import Role
from tests.factories import saved_corpus
from tests.support.clock import deadlines_clock_jumps

pytestmark = pytest.mark.django_db(transaction=True)
SHARED = Path(settings.OMEGA_SOTOPIA_DIR)
if not (SHARED / "sotopia_rl_sft_example_prompt_output.json").exists():
    pytest.skip(f"the shared SOTOPIA data is not at {SHARED} (set OMEGA_SOTOPIA_DIR)", allow_module_level=True)
SPACE = SHARED / "sotopia_space_example_sft_prompt.json"  # {model, prompt, result}, one agent's view
RL = SHARED / "sotopia_rl_sft_example_prompt_output.json"  # [{input, output, value}], four turns of one agent


@pytest.fixture(autouse=True)
def _dirs(settings, tmp_path):
    ensure_default_labels(Label)
    settings.OMEGA_EXPORT_DIR = tmp_path / "exports"
    settings.OMEGA_IMPORT_DIR = tmp_path / "imports"


def import_file(path: Path, **options) -> ImportJob:
    job = corpus_import_create(created_by=None, origin="cli", path=path, enqueue=False, **options)
    return import_job_run(job_id=job.pk)


def exported(corpus_id: int, user, formats: list[str], *, llm_calls: bool = False) -> dict[str, str]:
    version = corpus_export(
        corpus_id=corpus_id, formats=formats, options=ExportOptions(llm_calls=llm_calls), created_by=user
    )
    with zipfile.ZipFile(version_path(version)) as archive:
        return {Path(n).name: archive.read(n).decode() for n in archive.namelist()}


def full_files(corpus_id: int, user) -> dict[str, str]:
    files = exported(corpus_id, user, ["full"], llm_calls=True)
    return {n: files[n] for n in ("omega_tasks.jsonl", "omega_dialogues.jsonl")}


def everything(team, name: str, **filters):
    corpus = saved_corpus(user=team["cur"], name=name, split="", kept_only=False, passed_only=False, **filters)
    override_record(corpus_id=corpus.pk, kind="simulated", reason="test", user=team["cur"])
    return corpus


# --- the full-fidelity round trip -------------------------------------------------------------------------------


def test_full_export_imports_and_exports_again_identically(corpus_data, people, tmp_path):
    run, dialogue = corpus_data
    adjudicate(dialogue_id=dialogue.pk, curator=people["cur"], decision="accept", note="fine <b>really</b>", version=0)
    reported = LLMCall.objects.filter(dialogue=dialogue).order_by("id").first()
    LLMCall.objects.filter(pk=reported.pk).update(cached_tokens=123)  # as a vLLM server reports them
    first = full_files(everything(people, "before").pk, people["cur"])
    source = tmp_path / "export.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for name, text in first.items():
            archive.writestr(name, text)
    records = [json.loads(line) for line in first["omega_dialogues.jsonl"].splitlines()]
    assert len(records) == run.dialogues.filter(status="finished").count() >= 1
    assert records[0]["llm_calls"] and any(t["annotations"] for r in records for t in r["turns"])

    # importing into the instance the dialogues came from adds nothing: their keys are here already
    again = import_file(source)
    assert again.status == "succeeded" and again.counts["already_here"] == len(records)
    assert again.counts["dialogues"] == 0 and not Run.objects.filter(kind=RunKind.IMPORTED).exists()

    # another instance: nothing of the original is left (runs, tasks, profiles, the annotators' accounts)
    Run.objects.all().delete()
    Task.objects.all().delete()
    Scenario.objects.all().delete()
    AgentProfile.objects.all().delete()
    ann_name = people["ann"].username
    people["ann"].delete()
    job = import_file(source)
    assert job.status == "succeeded", job.problems
    assert job.counts["dialogues"] == len(records) and job.counts["tasks_created"] == len(
        first["omega_tasks.jsonl"].splitlines()
    )
    imported = Run.objects.get(kind=RunKind.IMPORTED)
    assert imported.status == "finished" and imported.name == run.name and imported.import_job == job
    assert StepRating.objects.filter(dialogue__run=imported).count() > 0
    assert LLMCall.objects.filter(dialogue__run=imported).count() == sum(len(r["llm_calls"]) for r in records)
    cached = LLMCall.objects.filter(dialogue__run=imported, cached_tokens__isnull=False)
    assert list(cached.values_list("cached_tokens", flat=True)) == [123]  # the others: not reported, still null
    # annotations made elsewhere come as they were, naming an account that does not exist here
    copy = Dialogue.objects.get(external_key=records[0]["key"]) if records[0]["turns"][3]["annotations"] else None
    copy = copy or Dialogue.objects.get(external_key=next(r["key"] for r in records if r["decisions"]))
    assert any(a["annotator"] == ann_name for t in copy.turns.all() for a in t.imported.get("annotations", []))
    assert not type(people["cur"]).objects.filter(username=ann_name).exists()

    second = full_files(everything(people, "after").pk, people["cur"])
    assert second == first  # byte for byte: keys, turns, ratings, annotations, decisions, calls


def test_a_changed_task_is_refused_with_the_field_that_differs(corpus_data, people, tmp_path):
    first = full_files(everything(people, "c").pk, people["cur"])
    task = json.loads(first["omega_tasks.jsonl"].splitlines()[0])
    task["profiles"]["scenario"]["agent1_goal"] = task["agents"][0]["goal"] = "Something else"
    dialogues = first["omega_dialogues.jsonl"].replace('"key": "omega-', '"key": "elsewhere-')
    source = tmp_path / "changed.jsonl"
    source.write_text(json.dumps(task) + "\n" + dialogues)
    job = import_file(source)
    assert job.status == "failed"
    assert job.problems[0]["line"] == 1 and job.problems[0]["field"] == "agents[0].goal"
    assert "nothing was changed" in job.problems[0]["message"]
    task["agents"][0]["goal"] = "Not what the profiles say"  # a summary that disagrees with its own profiles
    source.write_text(json.dumps(task) + "\n")
    job = import_file(source)
    assert [(p["field"], p["line"]) for p in job.problems] == [("agents[0].goal", 1)]
    assert not Dialogue.objects.filter(external_key__startswith="elsewhere-").exists()


# --- SFT files ------------------------------------------------------------------------------------------------


def test_sotopia_pi_input_output_records_make_one_dialogue_of_one_agent(db):
    job = import_file(RL)
    assert job.status == "succeeded" and job.format == "sotopia-sft"
    dialogue = Dialogue.objects.get()
    task = dialogue.task
    assert (task.agent1.full_name, task.agent2.full_name) == ("Mia Davis", "Benjamin Jackson")
    assert task.scenario.partial and task.scenario.text.startswith("Two friends, both avid fans")
    assert task.scenario.agent1_goal.startswith("Negotiate with your friend") and task.scenario.agent2_goal == ""
    assert task.scenario.relationship == "" and task.split == "train" and task.source == "imported"
    mia, ben = task.agent1, task.agent2
    assert (mia.age, mia.gender, mia.occupation) == (50, "Woman", "high school principal")
    assert mia.secret == "Part of a rebellious punk rock band in her youth"
    assert ben.partial and ben.age == 24 and ben.secret == ""  # Mia's view of Ben: no secret
    turns = list(dialogue.turns.order_by("index"))
    assert [t.speaker for t in turns] == [0, 1, 0, 1, 0, 1, 0]
    assert all(t.branch == "import" and t.action_type == "speak" for t in turns)
    assert turns[1].argument.startswith("Hello Mia, I understand") and turns[6].argument.startswith("I'm excited too")
    assert [turns[i].imported["extra"]["value"] for i in (0, 2, 4, 6)] == [9.0, 1.0, -1.0, 0.0]
    assert turns[1].imported == {}  # seen only in the histories
    assert not StepRating.objects.exists() and not LLMCall.objects.exists()  # nothing invented
    assert dialogue.final_goal_c is None and not dialogue.kept and dialogue.filter_passed is None
    assert dialogue.imported["source"]["lines"] == [2, 7, 12, 17]
    assert task.contexts["0"].startswith("Here is the context of this interaction:") and "1" not in task.contexts


@pytest.mark.parametrize("checks_in_time", [0, 2, 5], ids=["first-report", "checking", "writing"])  # 5 reports check RL
def test_an_import_past_its_deadline_is_marked_failed_and_leaves_nothing(db, settings, monkeypatch, checks_in_time):
    settings.OMEGA_IMPORT_DEADLINE_SECONDS = 60 * checks_in_time + 30
    deadlines_clock_jumps(monkeypatch, seconds=60)  # each progress report comes a minute after the one before
    job = import_file(RL)
    assert job.status == "failed"
    assert job.problems == [
        {"file": "(import)", "line": None, "field": "(deadline)", "message": f"stopped: past its deadline of "
         f"{settings.OMEGA_IMPORT_DEADLINE_SECONDS} s"}
    ]  # fmt: skip
    assert not Dialogue.objects.exists() and not Task.objects.exists() and not AgentProfile.objects.exists()


def test_prompt_result_records_with_an_empty_turn_and_a_single_quoted_dict(db):
    job = import_file(SPACE)
    assert job.status == "succeeded", job.problems
    turns = list(Dialogue.objects.get().turns.order_by("index"))
    assert len(turns) == 12 and turns[4].action_type == "none" and turns[4].speaker == 0  # "Turn #4: " (nothing)
    assert turns[11].speaker == 1 and turns[11].argument.startswith("Cheers to that, Hendrick!")  # from `result`
    assert turns[11].imported["extra"] == {"line": 1, "model": "gpt-4"}
    assert Dialogue.objects.get().run.model == "gpt-4"


def test_an_sft_record_of_a_library_task_joins_that_task(imported_sotopia):
    before = Task.objects.count()
    job = import_file(SPACE)
    assert job.counts["tasks_reused"] == 1 and Task.objects.count() == before
    task = Dialogue.objects.get().task
    assert not task.scenario.partial and task.external_id in set(Task.objects.values_list("external_id", flat=True))


def sft_line(prompt: str, output: str) -> str:
    return json.dumps({"instruction": prompt, "input": "", "output": output})


def test_both_perspectives_merge_into_one_dialogue_and_rebuild_both_goals(corpus_data, people, tmp_path):
    """omega-web's own SFT export holds every action from its speaker's view: importing it gives back each
    dialogue once, with both agents' goals, speakers and texts (corrections applied, as exported)."""
    run, dialogue = corpus_data
    corpus = everything(people, "sft", runs=[run.pk])
    version = corpus_export(corpus_id=corpus.pk, formats=["sotopia-sft"], created_by=people["cur"])
    source = tmp_path / "sotopia_omega.jsonl"
    with zipfile.ZipFile(version_path(version)) as archive:
        source.write_bytes(archive.read(next(n for n in archive.namelist() if n.endswith("sotopia_omega.jsonl"))))
    originals = list(run.dialogues.filter(status="finished").order_by("id"))
    job = import_file(source)
    assert job.status == "succeeded", job.problems
    imported = list(Dialogue.objects.filter(import_job=job).order_by("id"))
    assert len(imported) == len(originals)
    assert job.counts["tasks_created"] + job.counts["tasks_reused"] == 1  # the same task for every dialogue
    task = imported[0].task
    assert task.scenario.goals == (dialogue.task.scenario.agent1_goal, dialogue.task.scenario.agent2_goal) or (
        task.pk == dialogue.task.pk  # a library task (identical) is found rather than rebuilt
    )
    by_text = {tuple(t.argument for t in d.turns.order_by("index")): d for d in imported}
    for original in originals:
        texts = [t.argument for t in original.turns.order_by("index")]
        if original.pk == dialogue.pk:
            texts[4] = Turn.objects.get(dialogue=dialogue, index=4).annotations.get().corrected_text
        copy = by_text[tuple(texts)]
        assert [t.speaker for t in copy.turns.order_by("index")] == [
            t.speaker for t in original.turns.order_by("index")
        ]
        assert copy.imported["source"]["perspectives"] == [0, 1]


def test_a_task_seen_from_both_sides_is_rebuilt_with_both_goals(tmp_path):
    records = json.loads(RL.read_text())
    mia_view = records[1]["input"]
    ben_view = (
        mia_view.replace("Imagine you are Mia Davis", "Imagine you are Benjamin Jackson")
        .replace(
            "Negotiate with your friend to let you dress up as the character this time (Extra information: "
            "you've recently experienced some personal challenges and you feel that taking on the role of "
            "this character would be particularly meaningful for you)",
            "Unknown",
            1,
        )
        .replace("Benjamin Jackson's goal: Unknown", "Benjamin Jackson's goal: Keep the costume (<b>mine</b>)")
        .replace("You are at Turn #2.", "You are at Turn #3.")
        .replace(
            "\n.\nYou are at Turn #3",
            '\n\nTurn #2: Mia Davis said: "'
            + json.loads(records[1]["output"])["argument"]
            + '"\n.\nYou are at Turn #3',
        )
    )
    source = tmp_path / "both.jsonl"
    source.write_text(
        sft_line(mia_view, records[1]["output"])
        + "\n"
        + sft_line(ben_view, "{'action_type': 'leave', 'argument': ''}")
        + "\n"
    )
    job = import_file(source)
    assert job.status == "succeeded", job.problems
    dialogue = Dialogue.objects.get()
    assert dialogue.turns.count() == 4 and dialogue.turns.get(index=3).action_type == "leave"
    assert dialogue.imported["source"]["perspectives"] == [0, 1]
    scenario = dialogue.task.scenario
    assert scenario.agent1_goal.startswith("Negotiate") and scenario.agent2_goal == "Keep the costume (<b>mine</b>)"
    assert set(dialogue.task.contexts) == {"0", "1"}


# --- bad and hostile files ------------------------------------------------------------------------------------


def hostile_sft(tmp_path: Path) -> Path:
    records = json.loads(RL.read_text())
    lines = [
        json.dumps(records[0]),
        '{"instruction": "broken',  # line 2: bad JSON
        json.dumps({"instruction": records[1]["input"], "output": "not an action"}),  # line 3: bad output
        json.dumps({"foo": 1}),  # line 4: not a record this importer reads
        json.dumps(records[2]),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"input": "\xff\xfe"}\n')  # line 6: not UTF-8
    return path


def test_bad_records_are_named_precisely_and_nothing_is_imported(tmp_path):
    job = import_file(hostile_sft(tmp_path))
    assert job.status == "failed"
    where = [(p["line"], p["field"]) for p in job.problems]
    assert where == [(2, "(json)"), (3, "output"), (4, "(record)"), (6, "(encoding)")]
    assert all(p["file"] == "hostile.jsonl" for p in job.problems)
    assert "not an action" in job.problems[1]["message"] and "column" in job.problems[3]["message"]
    assert not Dialogue.objects.exists() and not Task.objects.exists() and not Run.objects.exists()


def test_skip_bad_records_imports_the_rest_and_lists_every_skipped_line(tmp_path):
    job = import_file(hostile_sft(tmp_path), skip_bad=True)
    assert job.status == "succeeded"
    assert [p["line"] for p in job.skipped] == [2, 3, 4, 6] and job.counts["skipped"] == 4
    assert Dialogue.objects.get().turns.count() == 5  # records 1 and 5 (turns 0 and 4) of the same dialogue


def test_huge_lines_and_wrong_encodings_are_refused_without_reading_them_whole(tmp_path, monkeypatch):
    from dialogues.corpus_import import stream

    monkeypatch.setattr(stream, "MAX_RECORD_BYTES", 10_000)
    records = json.loads(RL.read_text())
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(records[0]) + "\n" + json.dumps({"input": "x" * 50_000, "output": "{}"}) + "\n")
    job = import_file(path)
    assert job.status == "failed" and job.problems[0]["line"] == 2 and "longer than" in job.problems[0]["message"]
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(json.dumps(records[0]).replace("Mia", "Mía").encode("utf-8").replace("í".encode(), b"\xed"))
    job = import_file(latin)
    assert job.status == "failed" and job.problems[0]["field"] == "(encoding)" and job.problems[0]["line"] == 1


def test_an_array_file_with_broken_json_names_the_line(tmp_path):
    records = json.loads(RL.read_text())
    text = json.dumps(records[:2], indent=1)
    broken = text.replace('"value": 1.0', '"value": 1.0,,')
    path = tmp_path / "broken.json"
    path.write_text(broken)
    job = import_file(path)
    expected = broken[: broken.index(",,")].count("\n") + 1
    assert job.status == "failed" and job.problems[0]["line"] == expected and not Dialogue.objects.exists()


def test_the_command_line_reports_problems_and_skips(tmp_path, capsys):
    with pytest.raises(CommandError, match=r"hostile.jsonl, line 2, field '\(json\)'"):
        call_command("import_corpus", str(hostile_sft(tmp_path)))
    call_command("import_corpus", str(hostile_sft(tmp_path)), "--skip-bad")
    out = capsys.readouterr().out
    assert "skipped: hostile.jsonl, line 3, field 'output'" in out and "1 dialogue (" in out and "Into run #" in out


# --- through the browser ---------------------------------------------------------------------------------------


def test_upload_a_corpus_and_browse_what_came_in_escaped(client_for, tmp_path):
    records = json.loads(RL.read_text())
    hostile = dict(records[0], output=json.dumps({"action_type": "speak", "argument": "<script>alert(1)</script> hi"}))
    path = tmp_path / "hostile<b>.jsonl"
    path.write_text(json.dumps(hostile) + "\n")
    researcher = client_for(Role.RESEARCHER)
    assert client_for(Role.ANNOTATOR).get("/imports/corpus/new/").status_code == 403
    page = researcher.get("/imports/corpus/new/")
    assert page.status_code == 200 and b"Skip bad records" in page.content
    with path.open("rb") as upload:
        response = researcher.post("/imports/corpus/new/", {"file": upload, "format": "auto", "split": "train"})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert (
        job.status == "succeeded" and job.kind == "corpus" and Path(job.path).parent == Path(settings.OMEGA_IMPORT_DIR)
    )
    detail = researcher.get(response.url).content.decode()
    assert "Imported 1 dialogue" in detail and "hostile&lt;b&gt;.jsonl" in detail and "hostile<b>" not in detail
    run = Run.objects.get(kind=RunKind.IMPORTED)
    assert f"/runs/{run.pk}/" in detail
    assert researcher.get(f"/runs/{run.pk}/").status_code == 200
    dialogue = Dialogue.objects.get()
    page = researcher.get(f"/dialogues/{dialogue.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hi" in page and "<script>alert(1)" not in page
    assert "imported" in page and "Fork from here" not in page and "Made elsewhere" in page
    task_page = researcher.get(f"/tasks/{dialogue.task_id}/").content.decode()
    assert "Mia Davis" in task_page and "partial" in task_page and "exactly as this agent's prompts" in task_page
    other_side = researcher.get(f"/tasks/{dialogue.task_id}/context/agent2/").content.decode()
    assert "holds no prompt of this agent" in other_side and "relationship between them is unknown" in other_side
    assert researcher.get("/dialogues/").status_code == 200 and researcher.get("/imports/").status_code == 200


def test_an_upload_too_large_is_refused_before_it_is_kept(client_for, settings, tmp_path):
    settings.OMEGA_CORPUS_UPLOAD_MAX_BYTES = 100
    with RL.open("rb") as upload:
        response = client_for(Role.RESEARCHER).post("/imports/corpus/new/", {"file": upload, "format": "auto",
                                                                             "split": "train"})  # fmt: skip
    assert response.status_code == 400 and b"import_corpus FILE" in response.content
    assert not ImportJob.objects.exists() and not any(Path(settings.OMEGA_IMPORT_DIR).glob("*"))


def test_full_records_name_the_field_that_is_wrong(corpus_data, people, tmp_path):
    first = full_files(everything(people, "fields").pk, people["cur"])
    task_line, dialogue_line = (
        first["omega_tasks.jsonl"].splitlines()[0],
        first["omega_dialogues.jsonl"].splitlines()[0],
    )
    record = json.loads(dialogue_line)
    record["key"] = "elsewhere/dialogue/1"
    record["turns"][2]["rating"] = {**(record["turns"][2]["rating"] or {}), "goal_c": 11}
    record["turns"][3]["branch"] = "<script>"
    record["turns"][4]["index"] = 9
    del record["seed"]
    source = tmp_path / "fields.jsonl"
    source.write_text(task_line + "\n" + json.dumps(record) + "\n")
    job = import_file(source)
    assert job.status == "failed"
    assert {(p["line"], p["field"]) for p in job.problems} >= {
        (2, "seed"), (2, "turns[2].rating.goal_c"), (2, "turns[3].branch"), (2, "turns[4].index"),
    }  # fmt: skip
    assert not Dialogue.objects.filter(external_key="elsewhere/dialogue/1").exists()


def test_an_imported_dialogue_cannot_be_forked(db):
    from dialogues.experiments.services import Arm, ForkSettings, dialogue_fork

    import_file(RL)
    dialogue = Dialogue.objects.get()
    with pytest.raises(ValueError, match="was imported"):
        dialogue_fork(parent_id=dialogue.pk, turn=2, arms=[Arm("", ForkSettings())], seeds=[None], created_by=None)
    assert Run.objects.count() == 1


def test_an_import_cut_off_while_writing_starts_over_from_nothing(tmp_path):
    """A worker that died mid-write left rows behind; running the job again removes them first."""
    from dialogues.library.models import ImportStatus

    job = import_file(RL)
    first_run = Run.objects.get()
    job.status, job.created = ImportStatus.PENDING, {"runs": [first_run.pk], "tasks": [], "scenarios": [], "agents": []}
    job.save()
    Run.objects.filter(pk=first_run.pk).update(status="importing")
    again = import_job_run(job_id=job.pk)
    assert again.status == "succeeded" and again.counts["dialogues"] == 1 and again.counts["already_here"] == 0
    assert list(Run.objects.values_list("status", flat=True)) == ["finished"] and Dialogue.objects.count() == 1


def test_exports_of_an_sft_import_leave_out_the_side_whose_goal_is_unknown(db, people):
    import_file(RL)  # Mia's records only: Benjamin's goal is unknown
    files = exported(everything(people, "rl").pk, people["cur"], ["sotopia-sft", "sharegpt", "full"])
    records = [json.loads(line) for line in files["sotopia_omega.jsonl"].splitlines()]
    assert len(records) == 4 and all("Imagine you are Mia Davis" in r["instruction"] for r in records)
    assert "Negotiate with your friend" in records[0]["instruction"]
    chats = [json.loads(line) for line in files["sotopia_omega_sharegpt.jsonl"].splitlines()]
    assert [c["agent"] for c in chats] == ["Mia Davis"]
    dialogue = json.loads(files["omega_dialogues.jsonl"])
    assert [t["branch"] for t in dialogue["turns"]] == ["import"] * 7 and dialogue["source"]["format"] == "sotopia-sft"
    assert dialogue["turns"][0]["extra"] == {"line": 2, "value": 9.0} and dialogue["turns"][0]["rating"] is None


def test_library_agents_are_recognised_from_either_side_of_a_prompt(imported_sotopia):
    """Mia's prompts show her in full and Benjamin as a friend sees him (no secret): both are the library's."""
    agents_before = AgentProfile.objects.count()
    job = import_file(RL)
    task = Dialogue.objects.get().task
    assert job.counts["tasks_created"] == 1 and AgentProfile.objects.count() == agents_before
    assert not task.agent1.partial and not task.agent2.partial and task.scenario.partial


def test_the_same_words_in_another_scenario_are_another_dialogue(tmp_path):
    records = json.loads(RL.read_text())
    import_file(RL)
    moved = [dict(r, input=r["input"].replace("wizarding series", "space opera")) for r in records]
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(moved))
    job = import_file(path)
    assert job.counts["dialogues"] == 1 and job.counts["already_here"] == 0 and Dialogue.objects.count() == 2
    assert import_file(path).counts["already_here"] == 1  # and the same file again adds nothing


def test_peoples_judge_ratings_go_out_and_come_back_in(corpus_data, people, tmp_path):
    from dialogues.annotation.judge_ratings import episode_rating_save, relevance_save, step_rating_save
    from evaluation.calibration.selectors import runs_calibration

    _run, dialogue = corpus_data
    rated = StepRating.objects.filter(dialogue=dialogue).order_by("turn__index").first().turn
    scores = {"step1": 6, "step2": 7, "step3": 8, "step4": 9, "step5": 0}
    step_rating_save(turn_id=rated.pk, annotator=people["ann"], scores=scores, version=0)
    step_rating_save(turn_id=rated.pk, annotator=people["cur"], scores={"step1": 3}, version=0)
    relevance_save(turn_id=rated.pk, annotator=people["ann"], score=-0.5, version=0)
    episode_rating_save(dialogue_id=dialogue.pk, speaker=0, annotator=people["ann"], scores={"GOAL": 6.5}, version=0)
    first = full_files(everything(people, "before").pk, people["cur"])
    records = [json.loads(line) for line in first["omega_dialogues.jsonl"].splitlines()]
    record = next(r for r in records if r["turns"][rated.index].get("judge_ratings"))
    assert record["schema"] == "omega-web/full/3"
    out = record["turns"][rated.index]["judge_ratings"]
    assert [(r["annotator"], r["step1"], r["step5"], r["relevance"]) for r in out] == [
        ("ann", 6, 0, -0.5),
        ("cur", 3, None, None),
    ]
    assert [(r["annotator"], r["speaker"], r["scores"]) for r in record["episode_ratings"]] == [
        ("ann", 0, {"GOAL": 6.5})
    ]
    source = tmp_path / "export.zip"
    with zipfile.ZipFile(source, "w") as archive:
        for name, text in first.items():
            archive.writestr(name, text)
    Run.objects.all().delete()
    Task.objects.all().delete()
    Scenario.objects.all().delete()
    AgentProfile.objects.all().delete()
    job = import_file(source)
    assert job.status == "succeeded", job.problems
    imported = Run.objects.get(kind=RunKind.IMPORTED)
    copy = Dialogue.objects.get(run=imported, external_key=record["key"])
    assert copy.turns.get(index=rated.index).imported["judge_ratings"] == out
    # the calibration counts them, named as the file names them
    c = runs_calibration([imported], resamples=100)
    step1 = next(r for r in c.sections[0].rows if r.key == "step1").result
    assert step1.items == 1 and step1.people == 2 and step1.pairs[0][1] == pytest.approx(4.5)
    assert c.changes.termination_turns + len(c.changes.filters) >= 1  # ann's complete answers count in decisions
    second = full_files(everything(people, "after").pk, people["cur"])
    assert second == first  # the ratings come back out as they went in


def test_bad_judge_ratings_in_a_full_file_are_named(corpus_data, people, tmp_path):
    first = full_files(everything(people, "bad").pk, people["cur"])
    lines = [json.loads(line) for line in first["omega_dialogues.jsonl"].splitlines()]
    lines[0]["turns"][5]["judge_ratings"] = [{"annotator": "x", "step1": 11, "relevance": 0.3}]
    lines[0]["episode_ratings"] = [{"annotator": "x", "speaker": 0, "scores": {"SEC": 4}}]
    source = tmp_path / "bad.jsonl"
    source.write_text(first["omega_tasks.jsonl"] + "".join(json.dumps(r) + "\n" for r in lines))
    job = import_file(source)
    text = " ".join(str(p) for p in job.problems)
    assert job.status == "failed"
    assert "turns[5].judge_ratings[0].step1" in text and "turns[5].judge_ratings[0].relevance" in text
    assert "episode_ratings[0].scores.SEC" in text


def test_a_bad_cached_token_count_is_named_and_nothing_is_imported(corpus_data, people, tmp_path):
    first = full_files(everything(people, "cached").pk, people["cur"])
    records = [json.loads(line) for line in first["omega_dialogues.jsonl"].splitlines()]
    records[0]["llm_calls"][0]["cached_tokens"] = -5
    records[0]["llm_calls"][1]["cached_tokens"] = "many"
    source = tmp_path / "bad-cached.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("omega_tasks.jsonl", first["omega_tasks.jsonl"])
        archive.writestr("omega_dialogues.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    Run.objects.all().delete()  # another instance: the keys are new here
    job = import_file(source)
    assert job.status == "failed"
    fields = [p["field"] for p in job.problems]
    assert fields == ["llm_calls[0].cached_tokens", "llm_calls[1].cached_tokens"], job.problems
    assert "must not be negative" in job.problems[0]["message"] and "an integer" in job.problems[1]["message"]
    assert not Run.objects.filter(kind=RunKind.IMPORTED).exists()
