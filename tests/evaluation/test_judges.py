"""The LLM judges through a real OpenAI-compatible test server: S_rel = sigmoid(mean) of known relevance scores,
SOTOPIA-EVAL parsing, range checks, re-asks and averaging, failures reported without losing the rest, results
kept per judge version and reused until the prompt changes."""

from __future__ import annotations

import json
import math
import re
import threading

import pytest

from dialogues.annotation.services import TurnAnnotationInput, turn_annotation_save
from dialogues.engine.actions import UnusableAnswer
from dialogues.library.models import Task
from evaluation import judges, report
from evaluation.jobs import job_create, job_run
from evaluation.judges import EPISODE, RELEVANCE, JudgeConfig
from evaluation.models import EpisodeScore, JobStatus, RelevanceScore
from omega_web.roles import Role
from tests.factories import DialogueFactory
from tests.support.clock import deadlines_clock_jumps
from tests.support.llm_server import Reply, ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = ["Could we share the seats fairly?", "I need the window seat.", "Let us take turns then.",
         "Fine, you first.", "Thank you, that works."]  # fmt: skip
SCORES = {0: 1, 1: -0.5, 2: "0.5", 3: 0, 4: 1}  # by turn; "0.5" as a string is accepted


def relevance_answer(score) -> str:
    return json.dumps({"score_justification": "because <b>reasons</b>", "score": score})


def turn_of(body) -> int:
    return int(re.search(r"\(turn #(\d+)\)", body["messages"][0]["content"]).group(1))


def episode_answer(goal1: int = 8, goal2: int = 6, **override) -> str:
    def agent(goal):
        scores = {"believability": 8, "relationship": 2, "knowledge": 4, "secret": 0, "social_rules": -1,
                  "financial_and_material_benefits": 1, "goal": goal}  # fmt: skip
        scores.update(override)
        return {k: {"reasoning": f"why {k}", "score": v} for k, v in scores.items()}

    return json.dumps({"agent_1": agent(goal1), "agent_2": agent(goal2)})


@pytest.fixture
def dialogue(demo_tasks):
    return DialogueFactory(run__name="r", task=Task.objects.first(), kept=True, turns=TEXTS)


@pytest.fixture
def judge_server(settings):
    server = ScriptedLLMServer("judge-a", served=["judge-a", "judge-b"])
    with server:
        settings.OMEGA_JUDGE_BASE_URLS = [server.base_url]
        settings.OMEGA_JUDGE_MODEL = "judge-a"
        settings.OMEGA_LLM_TRANSPORT_RETRIES = 1
        yield server


def test_s_rel_is_the_sigmoid_of_the_mean_of_known_scores(dialogue, judge_server):
    judge_server.responder = lambda purpose, body: relevance_answer(SCORES[turn_of(body)])
    config = JudgeConfig(relevance_history=2)
    job = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"], config=config).pk)
    assert job.status == JobStatus.DONE and job.problems == []
    assert job.counts["srel"]["judged"] == 5
    version, _ = report.pick_version(RELEVANCE, [dialogue.pk], None)
    agents = report.agent_sif([dialogue.pk], version)
    expected = {0: 1 / (1 + math.exp(-(1 + 0.5 + 1) / 3)), 1: 1 / (1 + math.exp(-(-0.5 + 0) / 2))}
    for speaker in (0, 1):
        assert abs(agents[(dialogue.pk, speaker)].s_rel - expected[speaker]) < 1e-12
        assert agents[(dialogue.pk, speaker)].s_sif is None  # no S_div yet
    table = report.sif_table([dialogue.pk], version)
    assert table.rows[2]["s_rel_pooled"] == pytest.approx(100 * judges.sigmoid((1 - 0.5 + 0.5 + 0 + 1) / 5))
    assert table.rows[2]["s_rel"] == pytest.approx(50 * (expected[0] + expected[1]))  # the mean of both agents
    assert table.goal_label == "final goal_c"  # no SOTOPIA-EVAL yet
    # every request: temperature 0, one sample, structured output, the speaker's goal and at most 2 turns before
    bodies = [r["body"] for r in judge_server.requests if r["purpose"] == "eval.relevance"]
    assert len(bodies) == 5 and all(b["temperature"] == 0 and b["n"] == 1 and "response_format" in b for b in bodies)
    last = next(b for b in bodies if turn_of(b) == 4)["messages"][-1]["content"]
    shown = last.split("The action to judge")[0]
    assert "Turn #1" not in shown and "Turn #2" in shown and "Turn #3" in shown
    assert dialogue.task.scenario.agent1_goal[:40] in last and dialogue.task.scenario.agent2_goal[:40] not in last
    row = RelevanceScore.objects.get(turn__index=2)
    assert row.score == 0.5 and row.samples == [{"score": 0.5, "justification": "because <b>reasons</b>"}]


def test_several_relevance_samples_are_separate_requests_and_averaged(dialogue, judge_server):
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def answer(purpose, body):  # per action, the first sample says 1 and the second 0.5
        with lock:
            seen[turn_of(body)] = seen.get(turn_of(body), 0) + 1
            return relevance_answer(1 if seen[turn_of(body)] == 1 else 0.5)

    judge_server.responder = answer
    config = JudgeConfig(relevance_samples=2)
    job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"], config=config).pk)
    assert len([r for r in judge_server.requests if r["purpose"] == "eval.relevance"]) == 10  # the server refuses n>1
    assert set(RelevanceScore.objects.values_list("score", flat=True)) == {0.75}


def test_relevance_answers_outside_the_five_scores_are_asked_again(dialogue, judge_server):
    seen: dict[int, int] = {}

    def answer(purpose, body):
        turn = turn_of(body)
        seen[turn] = seen.get(turn, 0) + 1
        if turn == 1 and seen[turn] == 1:
            return relevance_answer(0.7)
        if turn == 3:
            return "I think it is quite relevant."
        return relevance_answer(0)

    judge_server.responder = answer
    job = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"]).pk)
    assert RelevanceScore.objects.get(turn__index=1).rejected[0]["reason"].startswith("score 0.7 is not one of")
    failed = RelevanceScore.objects.get(turn__index=3)
    assert failed.score is None and seen[3] == 4 and "0 of 1 samples usable after 3 re-asks" in failed.problem
    assert job.status == JobStatus.DONE and job.counts["srel"] == {**job.counts["srel"], "judged": 4, "failed": 1}
    assert job.problems == [{"metric": "srel", "dialogue": dialogue.pk, "item": "turn 3", "reason": failed.problem}]
    version, _ = report.pick_version(RELEVANCE, [dialogue.pk], None)
    agent2 = report.agent_sif([dialogue.pk], version)[(dialogue.pk, 1)]
    assert agent2.s_rel is None and agent2.missing == 1  # never an average over the scored part


def test_sotopia_eval_parses_checks_ranges_re_asks_and_averages(dialogue, judge_server):
    judge_server.script(
        "eval.sotopia",
        "not json at all",
        episode_answer(secret=3),  # SEC must be in −10…0
        episode_answer(8, 6),
        episode_answer(9, 5),
        episode_answer(10, 4, knowledge=7),
    )
    job = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["sotopia"]).pk)
    assert job.status == JobStatus.DONE and not job.problems
    bodies = [r["body"] for r in judge_server.requests if r["purpose"] == "eval.sotopia"]
    assert len(bodies) == 5 and all(b["temperature"] == 0 and b["n"] == 1 for b in bodies)  # 3 asked, 2 re-asked
    one, two = EpisodeScore.objects.filter(dialogue=dialogue).order_by("speaker")
    assert one.goal == pytest.approx(9) and two.goal == pytest.approx(5) and one.kno == pytest.approx(5)
    assert one.overall == pytest.approx((8 + 2 + 5 + 0 - 1 + 1 + 9) / 7)
    assert len(one.samples) == 3 and one.samples[0]["BEL"] == {"score": 8, "reasoning": "why believability"}
    reasons = sorted(r["reason"] for r in one.rejected)
    assert any("outside -10…0" in r for r in reasons) and len(reasons) == 2
    # self-play: the task's value is the mean of both agents
    task_scores = report.task_scores([dialogue.pk], report.pick_version(EPISODE, [dialogue.pk], None)[0])
    assert task_scores[dialogue.task_id]["GOAL"] == pytest.approx(7)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (episode_answer(goal=11), "agent_1.goal score 11 is outside 0…10"),
        (episode_answer(relationship=2.5), "agent_1.relationship score 2.5 is not an integer"),
        (json.dumps({"agent_1": {}}), "agent_1.believability has no score"),
        (json.dumps({"agent_2": {}}), "missing agent_1"),
        (episode_answer(financial_and_material_benefits=-6), "outside -5…5"),
    ],
)
def test_episode_answers_out_of_range_are_refused(text, problem):
    with pytest.raises(UnusableAnswer, match=re.escape(problem)):
        judges.parse_episode(text)


def test_sotopias_own_reasoning_score_pairs_are_read():
    answer = {f"agent_{i}": {d.key: ["because", d.high] for d in judges.DIMENSIONS} for i in (1, 2)}
    parsed = judges.parse_episode(json.dumps(answer))
    assert parsed[1]["GOAL"] == {"score": 10, "reasoning": "because"}


def test_a_judge_that_keeps_failing_is_reported_and_the_rest_is_kept(dialogue, judge_server):
    judge_server.responder = lambda purpose, body: (
        Reply(status=500) if purpose == "eval.sotopia" else relevance_answer(0.5)
    )
    job = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel", "sotopia"]).pk)
    assert job.status == JobStatus.DONE
    assert [p["metric"] for p in job.problems] == ["sotopia"]
    assert "could not be reached" in job.problems[0]["reason"] and "HTTP 500" in job.problems[0]["reason"]
    rows = EpisodeScore.objects.filter(dialogue=dialogue)
    assert rows.count() == 2 and all(r.overall is None and "HTTP 500" in r.problem for r in rows)
    assert RelevanceScore.objects.filter(score=0.5).count() == 5
    table = report.episode_table([dialogue.pk], report.pick_version(EPISODE, [dialogue.pk], None)[0])
    assert table.failed == 2 and table.rows[0]["n"] == 0  # reported, not averaged as anything


def test_results_sit_beside_per_judge_and_are_reused_until_the_prompt_changes(
    dialogue, judge_server, settings, make_user
):
    judge_server.responder = lambda purpose, body: relevance_answer(1 if body["model"] == "judge-a" else -1)
    job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"]).pk)
    settings.OMEGA_JUDGE_MODEL = "judge-b"
    job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"]).pk)
    versions = report.judge_versions(RELEVANCE, [dialogue.pk])
    assert {v.model for v in versions} == {"judge-a", "judge-b"} and all(v.results == 5 for v in versions)
    a = next(v for v in versions if v.model == "judge-a")
    assert report.agent_sif([dialogue.pk], a)[(dialogue.pk, 0)].s_rel == pytest.approx(judges.sigmoid(1))
    # again with judge-b: every prompt unchanged, nothing asked
    before = len(judge_server.requests)
    again = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"]).pk)
    assert len(judge_server.requests) == before and again.counts["srel"]["reused"] == 5
    # a curator corrects turn 3: its prompt and those of the turns that show it in their history change
    turn = dialogue.turns.get(index=3)
    turn_annotation_save(
        turn_id=turn.pk,
        annotator=make_user(Role.CURATOR, "cur"),
        data=TurnAnnotationInput(corrected_text="Something else entirely.", correction_reason="typo"),
        version=0,
    )
    changed = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"]).pk)
    assert changed.counts["srel"]["judged"] == 2 and changed.counts["srel"]["reused"] == 3
    corrected = [r for r in judge_server.requests[before:] if turn_of(r["body"]) == 3]
    assert "Something else entirely." in corrected[0]["body"]["messages"][-1]["content"]


def test_the_judge_configuration_is_checked():
    with pytest.raises(ValueError, match="sample counts must be at least 1"):
        JudgeConfig(episode_samples=0)
    assert JudgeConfig().episode_samples == 3 and JudgeConfig().temperature == 0
    assert pytest.approx((-30 / 7, 40 / 7)) == judges.OVERALL_RANGE


def test_a_job_past_its_deadline_stops_and_is_marked_failed_with_the_reason(
    dialogue, judge_server, settings, monkeypatch
):
    judge_server.responder = lambda purpose, body: relevance_answer(1)
    settings.OMEGA_EVAL_DEADLINE_SECONDS = 100
    deadlines_clock_jumps(monkeypatch, seconds=60)  # in time at the start (60 s), past it after the first chunk
    job = job_run(job_create(scope="dialogue", dialogue_ids=[dialogue.pk], metrics=["srel"]).pk)
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert job.error == "stopped: past its deadline of 100 s"
    assert job.counts == {} and RelevanceScore.objects.count() == 5  # the chunk it finished is kept, for reuse


@pytest.mark.parametrize("dimension", judges.DIMENSIONS, ids=lambda d: d.label)
def test_the_episode_schema_lists_exactly_the_scores_the_parser_takes(dimension):
    """As for the step rating: an enum beside minimum and maximum, for llama-cpp-python's grammar."""
    score = judges.EPISODE_SCHEMA["properties"]["agent_1"]["properties"][dimension.key]["properties"]["score"]
    for value in range(-12, 13):
        agent = {d.key: {"reasoning": "", "score": value if d is dimension else d.high} for d in judges.DIMENSIONS}
        try:
            judges.parse_episode(json.dumps({"agent_1": agent, "agent_2": agent}))
            taken = True
        except UnusableAnswer:
            taken = False
        assert taken is (value in score["enum"]) is (score["minimum"] <= value <= score["maximum"]), value
