"""SOTOPIA-EVAL with sotopia's own evaluator (ADR 0025): its prompt and answer schema come from the installed
package, in its own environment, and go through our client to the judge (a real local test server); every score
records its evaluator, and reports never average two evaluators' scores together.

The tests marked `sotopia` need sotopia's environment (`make sotopia`): skipped with the reason without it, failed
instead under OMEGA_REQUIRE_SOTOPIA=1 (`make test-sotopia`, CI)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from dialogues.corpora.data import dialogues as read_dialogues
from dialogues.engine.actions import UnusableAnswer
from dialogues.library.models import Task
from evaluation import judges, report, sotopia_evaluator
from evaluation.jobs import SOTOPIA_PURPOSE, JobError, job_create, job_run
from evaluation.judges import EPISODE
from evaluation.models import EpisodeEvaluator, EpisodeScore, EvaluationJob, JobStatus
from omega_web.roles import Role
from tests.factories import DialogueFactory, RunFactory
from tests.support.llm_server import ScriptedLLMServer
from tests.support.sotopia import require_sotopia

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = ["Could we share the seats fairly?", "I need the window seat.", "Let us take turns then.",
         "Fine, you first.", "Thank you, that works."]  # fmt: skip
SCORES = {"believability": 8, "relationship": 2, "knowledge": 4, "secret": 0, "social_rules": -1,
          "financial_and_material_benefits": 1, "goal": 7}  # fmt: skip


def sotopia_answer(goal1: int = 7, goal2: int = 5, **override) -> str:
    """An answer in the form sotopia's evaluator asks for: [reasoning, score] per dimension, per agent."""

    def agent(goal):
        return {k: [f"why {k}", v] for k, v in {**SCORES, **override, "goal": goal}.items()}

    return json.dumps({"evaluations": {"agent_1": agent(goal1), "agent_2": agent(goal2)}})


def our_answer(goal: int) -> str:
    agent = {k: {"reasoning": "ours", "score": v} for k, v in {**SCORES, "goal": goal}.items()}
    return json.dumps({"agent_1": agent, "agent_2": agent})


@pytest.fixture
def dialogue(demo_tasks):
    return DialogueFactory(run__name="r", task=Task.objects.first(), kept=True, turns=TEXTS)


@pytest.fixture
def judge_server(settings):
    server = ScriptedLLMServer("judge-a")
    with server:
        settings.OMEGA_JUDGE_BASE_URLS = [server.base_url]
        settings.OMEGA_JUDGE_MODEL = "judge-a"
        settings.OMEGA_LLM_TRANSPORT_RETRIES = 1
        yield server


@pytest.fixture
def sotopia_env():
    require_sotopia()


def bodies(server: ScriptedLLMServer, purpose: str) -> list[dict]:
    return [r["body"] for r in server.requests if r["purpose"] == purpose]


# --- through sotopia's own environment ---------------------------------------------------------------------


@pytest.mark.sotopia
def test_sotopias_evaluator_scores_the_seven_dimensions_through_the_judge_server(dialogue, judge_server, sotopia_env):
    judge_server.script(SOTOPIA_PURPOSE, sotopia_answer(goal1=11), sotopia_answer(7, 5), sotopia_answer(9, 5))
    judge_server.responder = lambda purpose, body: sotopia_answer(8, 5)
    job = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"], evaluator="sotopia").pk)
    assert job.status == JobStatus.DONE and job.problems == [] and job.counts["sotopia"]["judged"] == 1
    package = sotopia_evaluator.describe()
    assert job.episode_evaluator == "sotopia" and job.versions == {"sotopia": package.prompt_version}
    assert job.config["sotopia_package"] == package.sotopia == "0.1.5"

    # the prompt is the one the installed package writes for this dialogue, sent as is through our client
    sent = bodies(judge_server, SOTOPIA_PURPOSE)
    assert len(sent) == 4  # three samples (separate requests at temperature 0), one re-asked: goal 11 is out of range
    data = next(iter(read_dialogues([dialogue.pk], annotations=False)))
    episode = sotopia_evaluator.episode(data.spec, [(t.speaker, t.action_type, t.text) for t in data.turns])
    _, (expected,) = sotopia_evaluator.prompts([episode])
    assert sent[0]["messages"] == [{"role": "user", "content": expected}]
    assert all(text in expected for text in TEXTS) and dialogue.task.scenario.agent1_goal[:40] in expected
    assert package.dimensions["believability"] and package.dimensions["believability"] in expected  # its schema
    assert "You evaluate a finished social interaction" not in expected  # none of our own prompt
    assert "evaluations.agent_1.goal score 11 is outside 0…10" in sent[-1]["messages"][-1]["content"]  # the repair
    for body in sent:
        assert body["max_tokens"] == 4096 and body["temperature"] == 0 and body["n"] == 1  # paper A.3
        schema = body["response_format"]["json_schema"]["schema"]
        agent = schema["properties"]["evaluations"]["properties"]["agent_1"]
        assert agent["required"] == [d.key for d in judges.DIMENSIONS]
        assert agent["properties"]["secret"]["prefixItems"][1]["enum"] == list(range(-10, 1))

    one, two = EpisodeScore.objects.filter(dialogue=dialogue).order_by("speaker")
    assert one.evaluator == two.evaluator == "sotopia" and one.prompt_version == package.prompt_version
    assert (one.goal, two.goal) == (pytest.approx(8), pytest.approx(5))  # (7 + 9 + 8) / 3, 5
    assert (one.bel, one.rel, one.kno, one.sec, one.soc, one.fin) == (8, 2, 4, 0, -1, 1)
    assert one.overall == pytest.approx((8 + 2 + 4 + 0 - 1 + 1 + 8) / 7)
    assert sorted(sample["GOAL"]["score"] for sample in one.samples) == [7, 8, 9]  # in whichever order they came
    assert one.samples[0]["BEL"] == {"score": 8, "reasoning": "why believability"}

    # asked again: the same prompts are reused, nothing goes to the server
    before = len(judge_server.requests)
    again = job_run(
        job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"], evaluator="sotopia").pk
    )
    assert again.counts["sotopia"]["reused"] == 1 and len(judge_server.requests) == before

    # our evaluator beside it: two versions, each with its evaluator; a mean over both is refused
    judge_server.responder = lambda purpose, body: our_answer(2) if purpose == "eval.sotopia" else sotopia_answer()
    ours = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"]).pk)
    assert ours.status == JobStatus.DONE and ours.episode_evaluator == "omega"
    assert [b["max_tokens"] for b in bodies(judge_server, "eval.sotopia")] == [4096] * 3
    versions = report.judge_versions(EPISODE, [dialogue.pk])
    assert sorted(v.evaluator for v in versions) == ["omega", "sotopia"]
    with pytest.raises(report.MixedEvaluators, match="cannot be averaged together"):
        report.task_scores([dialogue.pk], None, list(EpisodeScore.objects.filter(dialogue=dialogue)))
    by_sotopia = next(v for v in versions if v.evaluator == "sotopia")
    assert report.task_scores([dialogue.pk], by_sotopia)[dialogue.task_id]["GOAL"] == pytest.approx(6.5)


@pytest.mark.sotopia
def test_a_researcher_chooses_sotopias_evaluator_in_the_browser(dialogue, sotopia_env, client_for):
    """The evaluate form (no judge server configured: the simulated judge, which answers sotopia's form too)."""
    researcher = client_for(Role.RESEARCHER)
    form = researcher.get(f"/dialogues/{dialogue.pk}/sif/").content.decode()
    assert '<option value="sotopia">sotopia&#x27;s evaluator</option>' in form  # offered: the environment is there
    answer = researcher.post(
        f"/dialogues/{dialogue.pk}/evaluate/", {"metrics": ["sotopia"], "evaluator": "sotopia"}, HTTP_HX_REQUEST="true"
    )
    job = EvaluationJob.objects.get()
    assert job.status == JobStatus.DONE and job.episode_evaluator == "sotopia", job.error
    rows = EpisodeScore.objects.filter(dialogue=dialogue, evaluator="sotopia", judge_model="simulated-expert")
    assert rows.count() == 2 and all(r.overall is not None for r in rows)
    assert "(sotopia&#x27;s evaluator, prompt" in answer.content.decode()  # the panel names whose scores they are


@pytest.mark.sotopia
def test_the_cli_evaluates_with_sotopias_evaluator_and_names_it(dialogue, sotopia_env):
    out = io.StringIO()
    call_command(
        "evaluate", "--dialogue", str(dialogue.pk), "--metrics", "sotopia", "--evaluator", "sotopia", "--simulated",
        stdout=out, verbosity=0,
    )  # fmt: skip
    assert "SOTOPIA-EVAL by sotopia's evaluator (sotopia 0.1.5)" in out.getvalue()
    assert EvaluationJob.objects.get().episode_evaluator == "sotopia"


@pytest.mark.sotopia
def test_a_job_whose_sotopia_changed_since_it_was_created_fails_with_the_reason(dialogue, sotopia_env):
    job = job_create(
        scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"], evaluator="sotopia", simulated=True
    )
    EvaluationJob.objects.filter(pk=job.pk).update(versions={"sotopia": "000000000000"})  # made by another sotopia
    job = job_run(job.pk)
    assert job.status == JobStatus.FAILED and "changed since this job was created" in job.error
    assert not EpisodeScore.objects.exists()


# --- without sotopia's environment ------------------------------------------------------------------------


def test_without_sotopias_environment_the_evaluation_is_refused_with_how_to_get_it(dialogue, settings, tmp_path):
    settings.OMEGA_SOTOPIA_PYTHON = str(tmp_path / "nowhere" / "python")
    with pytest.raises(JobError, match=r"not installed: no Python at .*nowhere.*make sotopia"):
        job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"], evaluator="sotopia")
    with pytest.raises(CommandError, match="make sotopia"):
        call_command(
            "evaluate", "--dialogue", str(dialogue.pk), "--metrics", "sotopia", "--evaluator", "sotopia",
            "--simulated", stdout=io.StringIO(),
        )  # fmt: skip
    assert not EvaluationJob.objects.exists()


def test_the_browser_form_says_when_sotopias_evaluator_is_not_installed(dialogue, settings, tmp_path, client_for):
    settings.OMEGA_SOTOPIA_PYTHON = str(tmp_path / "nowhere" / "python")
    researcher = client_for(Role.RESEARCHER)
    page = researcher.get(f"/runs/{dialogue.run.pk}/report/").content.decode()
    assert '<option value="omega" selected>omega-web&#x27;s prompt (default)</option>' in page
    assert '<option value="sotopia" disabled title="sotopia&#x27;s evaluator is not installed' in page
    assert "(not installed: make sotopia)</option>" in page
    answer = researcher.post(
        f"/runs/{dialogue.run.pk}/evaluate/", {"metrics": ["sotopia"], "evaluator": "sotopia"}, follow=True
    )
    assert "Not started: sotopia&#x27;s evaluator is not installed" in answer.content.decode()
    assert not EvaluationJob.objects.exists()


def test_evaluator_choices_are_checked(dialogue):
    with pytest.raises(JobError, match="unknown SOTOPIA-EVAL evaluator 'gpt'"):
        job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"], evaluator="gpt")
    with pytest.raises(JobError, match="choose the sotopia metric with it"):
        job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"], evaluator="sotopia")
    with pytest.raises(CommandError, match="invalid choice: 'gpt'"):
        call_command("evaluate", "--dialogue", str(dialogue.pk), "--evaluator", "gpt", stdout=io.StringIO())


def score_row(dialogue, speaker: int, evaluator: str, goal: float, version: str) -> EpisodeScore:
    values = {"bel": 8, "rel": 1, "kno": 5, "sec": 0, "soc": 0, "fin": 0, "goal": goal}
    return EpisodeScore.objects.create(
        dialogue=dialogue, speaker=speaker, evaluator=evaluator, judge_model="judge-a", prompt_version=version,
        prompt_sha256="x", overall=sum(values.values()) / 7, **values,
    )  # fmt: skip


def test_reports_never_average_two_evaluators_together(demo_tasks, client_for):
    task = Task.objects.first()
    ours_run, theirs_run = RunFactory(name="ours"), RunFactory(name="theirs")
    ours = DialogueFactory(run=ours_run, task=task, kept=True, turns=TEXTS)
    theirs = DialogueFactory(run=theirs_run, task=task, kept=True, turns=TEXTS)
    for speaker in (0, 1):
        score_row(ours, speaker, "omega", 9, "aaaaaaaaaaaa")
        score_row(theirs, speaker, "sotopia", 3, "bbbbbbbbbbbb")
    both = [ours.pk, theirs.pk]

    # one mean over both evaluators' rows is refused, with why
    with pytest.raises(report.MixedEvaluators, match="omega-web's prompt and sotopia's evaluator cannot be averaged"):
        report.task_scores(both, None, list(EpisodeScore.objects.all()))
    # each version is one evaluator's, named by it
    versions = report.judge_versions(EPISODE, both)
    assert {(v.evaluator, v.key) for v in versions} == {
        ("omega", "judge-a@aaaaaaaaaaaa"),
        ("sotopia", "sotopia:judge-a@bbbbbbbbbbbb"),
    }
    by_sotopia, _ = report.pick_version(EPISODE, both, "sotopia:judge-a@bbbbbbbbbbbb")
    assert report.task_scores(both, by_sotopia)[task.pk]["GOAL"] == pytest.approx(3)
    assert report.episode_table(both, by_sotopia).rows[0]["GOAL"].mean == pytest.approx(3)

    # runs compared: GOAL and Overall from one evaluator; a run judged only by the other is said, not compared
    comparison = report.compare_runs([ours_run, theirs_run])
    assert comparison.evaluator == "omega" and comparison.unjudged == [theirs_run]
    assert comparison.summaries[0].goal == pytest.approx(9) and comparison.summaries[1].goal is None
    goal_test = next(t for t in comparison.tests if t["metric"] == "GOAL")
    assert goal_test["result"].n == 0  # no pairs: nothing compared across evaluators
    viewer = client_for(Role.VIEWER)
    page = viewer.get(f"/evaluations/compare/?run={ours_run.pk}&run={theirs_run.pk}")
    text = page.content.decode()
    assert "SOTOPIA-EVAL by omega-web&#x27;s prompt" in text
    assert "theirs" in text and "has SOTOPIA-EVAL only by another evaluator" in text

    # the report names the evaluator of every version it offers, and of the table it shows
    page = viewer.get(f"/runs/{theirs_run.pk}/report/").content.decode()
    assert "sotopia&#x27;s evaluator · judge-a · prompt bbbbbbbbbbbb" in page


# --- sotopia's answer form --------------------------------------------------------------------------------


def test_sotopias_answers_are_read_and_checked():
    parsed = sotopia_evaluator.parse_answer(sotopia_answer(7, 5))
    assert parsed[1]["GOAL"] == {"score": 5, "reasoning": "why goal"} and parsed[0]["SEC"]["score"] == 0
    wrapped = json.dumps({"properties": json.loads(sotopia_answer(7, 5))})  # a model echoing the schema's shape
    assert sotopia_evaluator.parse_answer(wrapped) == parsed
    for text, problem in [
        (json.dumps({"agent_1": {}}), "no evaluations object"),
        (json.dumps({"evaluations": {"agent_1": json.loads(sotopia_answer())["evaluations"]["agent_1"]}}),
         "missing evaluations.agent_2"),
        (sotopia_answer(goal1=11), "evaluations.agent_1.goal score 11 is outside 0…10"),
        (sotopia_answer(relationship=-6), "evaluations.agent_1.relationship score -6 is outside -5…5"),
    ]:  # fmt: skip
        with pytest.raises(UnusableAnswer, match=problem):
            sotopia_evaluator.parse_answer(text)


def test_the_structured_output_narrows_sotopias_schema_to_two_agents_and_the_ranges():
    pair = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2, "maxItems": 2}
    schema = {
        "$defs": {"Dims": {"type": "object", "properties": {d.key: {**pair, "description": d.label}
                                                            for d in judges.DIMENSIONS}}},
        "properties": {"evaluations": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Dims"}}},
    }  # fmt: skip
    package = sotopia_evaluator.Package("9.9", schema, {}, "v")
    narrowed = sotopia_evaluator.constraint_schema(package)
    evaluations = narrowed["properties"]["evaluations"]
    assert evaluations["required"] == ["agent_1", "agent_2"] and evaluations["additionalProperties"] is False
    goal = evaluations["properties"]["agent_2"]["properties"]["goal"]
    assert goal["description"] == "GOAL" and goal["prefixItems"][1]["enum"] == list(range(11))
    with pytest.raises(sotopia_evaluator.SotopiaUnavailable, match="no seven-dimension object"):
        sotopia_evaluator.constraint_schema(sotopia_evaluator.Package("9.9", {"$defs": {}}, {}, "v"))


def test_episode_evaluator_names(db):
    assert EpisodeEvaluator("omega").label == "omega-web's prompt"
    assert report.version_key("m", "v") == "m@v" and report.version_key("m", "v", "sotopia") == "sotopia:m@v"
