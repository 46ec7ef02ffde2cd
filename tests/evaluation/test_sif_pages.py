"""Evaluation pages: a dialogue's panel (S_div heatmap beside the relevance strip, SOTOPIA-EVAL with reasons), a
run's report with its tables and CSV downloads, runs compared with paired tests, jobs for a corpus. Viewers read,
researchers start; model and uploaded text stays escaped."""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import re
from statistics import fmean

import pytest

from dialogues.annotation.services import TurnAnnotationInput, turn_annotation_save
from dialogues.library.models import Task
from dialogues.runs.models import Dialogue, Run
from evaluation import judges, report
from evaluation.judges import EPISODE
from evaluation.models import DiversityScore, EpisodeScore, EvaluationJob, JobStatus, RelevanceScore
from evaluation.stats import paired
from omega_web.roles import Role
from tests.factories import CorpusFactory, run_of_dialogues

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ALL = {"metrics": ["sdiv", "srel", "sotopia"]}


TEXTS = ["Hello <script>alert(1)</script> there", "Hi, nice to see you.", "Could we share the seats?",
         "Sure, six each.", "Then it is settled, six each."]  # fmt: skip
KEPT = {"kept": True, "final_goal_c": 7.5}  # every dialogue of these runs: finished, kept, goal_c 7.5


@pytest.fixture
def dialogue(demo_tasks):
    return run_of_dialogues([Task.objects.first()], name="r", turns=TEXTS, dialogue=KEPT).dialogues.get()


def figures(page: str) -> list[dict]:
    return [json.loads(html_lib.unescape(f)) for f in re.findall(r'data-figure="([^"]*)"', page)]


def test_the_dialogue_panel_evaluates_and_shows_every_score_escaped(dialogue, client_for, make_user):
    viewer, researcher = client_for(Role.VIEWER), client_for(Role.RESEARCHER)
    panel = viewer.get(f"/dialogues/{dialogue.pk}/sif/").content.decode()
    assert "not computed" in panel and "Evaluate</button>" not in panel  # a viewer cannot start it
    assert viewer.post(f"/dialogues/{dialogue.pk}/evaluate/", ALL).status_code == 403
    answer = researcher.post(f"/dialogues/{dialogue.pk}/evaluate/", ALL, HTTP_HX_REQUEST="true")  # eager Celery
    assert answer.status_code == 200
    job = EvaluationJob.objects.get()
    assert job.status == JobStatus.DONE and job.judge_model == "simulated-expert" and job.dialogue == dialogue
    assert DiversityScore.objects.filter(dialogue=dialogue).count() == 2
    assert RelevanceScore.objects.filter(dialogue=dialogue, score__isnull=False).count() == 5
    assert EpisodeScore.objects.filter(dialogue=dialogue, overall__isnull=False).count() == 2
    panel = researcher.get(f"/dialogues/{dialogue.pk}/sif/").content.decode()
    assert "<script>alert(1)" not in panel and "simulated: not a language model" in panel
    agents = report.agent_sif([dialogue.pk], report.pick_version("srel", [dialogue.pk], None)[0])
    for speaker in (0, 1):
        a = agents[(dialogue.pk, speaker)]
        assert f"{100 * a.s_div:.1f}" in panel and f"{100 * a.s_rel:.1f}" in panel and f"{100 * a.s_sif:.1f}" in panel
    first = figures(panel)[0]
    heatmap, strip = first["data"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in heatmap["customdata"][0][1]
    assert strip["x"] == ["relevance"] and len(strip["z"]) == 3 and "&lt;script&gt;" in strip["customdata"][0][0]
    overall = EpisodeScore.objects.get(dialogue=dialogue, speaker=0).overall
    assert f"Overall {overall:.2f}" in panel and "BEL" in panel
    # a curator's correction: the strip shows the text as evaluated, escaped; S_div says it is stale
    turn_annotation_save(
        turn_id=dialogue.turns.get(index=0).pk,
        annotator=make_user(Role.CURATOR, "cur"),
        data=TurnAnnotationInput(corrected_text="Corrected <i>words</i>", correction_reason="t"),
        version=0,
    )
    panel = researcher.get(f"/dialogues/{dialogue.pk}/sif/").content.decode()
    strip = figures(panel)[0]["data"][-1]
    assert "Corrected &lt;i&gt;words&lt;/i&gt;" in strip["customdata"][0][0] and "evaluate again" in panel


def test_a_run_report_shows_the_tables_and_downloads_them(demo_tasks, client_for):
    tasks = list(Task.objects.all()[:3])
    run = run_of_dialogues(tasks, name="dsi", turns=TEXTS, dialogue=KEPT)
    Task.objects.filter(pk=tasks[0].pk).update(hard=True)
    viewer, researcher = client_for(Role.VIEWER), client_for(Role.RESEARCHER)
    assert "Not evaluated yet" in viewer.get(f"/runs/{run.pk}/sif/").content.decode()
    assert viewer.post(f"/runs/{run.pk}/evaluate/", ALL).status_code == 403
    assert researcher.post(f"/runs/{run.pk}/evaluate/", ALL).status_code == 302
    job = EvaluationJob.objects.get(run=run)
    assert job.status == JobStatus.DONE and len(job.dialogue_ids) == 3
    page = viewer.get(f"/runs/{run.pk}/report/").content.decode()
    ids = list(run.dialogues.values_list("pk", flat=True))
    version, _ = report.pick_version(EPISODE, ids, None)
    table = report.episode_table(ids, version)
    assert table.rows[0]["n"] == 3 and table.rows[1]["n"] == 1
    overall = table.rows[0]["Overall"]
    assert f"{overall.mean:.2f} ± {overall.half_width:.2f}" in page
    assert "Mean goal_c per turn" in page and "Strategy use over turns" in page and "Dialogues sorted by S_rel" in page
    # the S-IF table as CSV: the same numbers
    rows = list(csv.DictReader(io.StringIO(viewer.get(f"/runs/{run.pk}/report/sif.csv").content.decode())))
    sif = report.sif_table(ids, report.pick_version("srel", ids, None)[0])
    assert [r["agent"] for r in rows] == ["agent 1", "agent 2", "average"]
    assert float(rows[2]["s_sif"]) == pytest.approx(sif.rows[2]["s_sif"])
    with_goal = report.sif_table(ids, report.pick_version("srel", ids, None)[0], version)
    goals = {d: fmean(EpisodeScore.objects.filter(dialogue_id=d).values_list("goal", flat=True)) for d in ids}
    assert with_goal.goal_label == "GOAL (SOTOPIA-EVAL)"
    assert all(goal == pytest.approx(goals[pk]) for pk, _, goal in with_goal.points["s_rel"])
    sotopia = list(csv.DictReader(io.StringIO(viewer.get(f"/runs/{run.pk}/report/sotopia.csv").content.decode())))
    goal_all = next(r for r in sotopia if r["subset"] == "all" and r["dimension"] == "GOAL")
    assert float(goal_all["mean"]) == pytest.approx(table.rows[0]["GOAL"].mean) and goal_all["tasks"] == "3"
    assert (goal_all["evaluator"], goal_all["prompt_version"]) == ("omega", version.version)  # whose scores they are
    per_dialogue = viewer.get(f"/runs/{run.pk}/report/dialogues.csv").content.decode().splitlines()
    assert per_dialogue[0] == "dialogue,agent,s_div,s_rel,s_sif,actions,relevance_missing" and len(per_dialogue) == 7
    for name in ("goal-by-turn", "ratings-by-strategy", "strategy-use"):
        assert viewer.get(f"/runs/{run.pk}/report/{name}.csv").status_code == 200
    assert viewer.get(f"/runs/{run.pk}/report/nothing.csv").status_code == 404
    # the summary on the run's page
    summary = viewer.get(f"/runs/{run.pk}/sif/").content.decode()
    assert "Full report" in summary and f"{sif.rows[2]['s_sif']:.1f}" in summary


def test_runs_compared_in_table_4_with_paired_tests(demo_tasks, client_for):
    tasks = list(Task.objects.all()[:4])
    base = run_of_dialogues(tasks, name="dsi", turns=TEXTS, dialogue=KEPT)
    other = run_of_dialogues(tasks[:3], name="raw", variant="raw", turns=["Yes."] * 5, dialogue=KEPT)
    for run, goals in ((base, [8, 9, 7, 6]), (other, [5, 7, 6])):
        for d, goal in zip(run.dialogues.order_by("task_id"), goals, strict=True):
            for speaker in (0, 1):
                EpisodeScore.objects.create(dialogue=d, speaker=speaker, judge_model="j", prompt_version="v",
                                            prompt_sha256="s", bel=8, rel=1, kno=4, sec=0, soc=0, fin=0, goal=goal,
                                            overall=(13 + goal) / 7)  # fmt: skip
    page = client_for(Role.VIEWER).get(f"/evaluations/compare/?run={base.pk}&run={other.pk}").content.decode()
    comparison = report.compare_runs([base, other])
    goal_test = next(t["result"] for t in comparison.tests if t["metric"] == "GOAL")
    a = dict(zip(other.dialogues.order_by("task_id").values_list("task_id", flat=True), [5, 7, 6], strict=True))
    b = dict(zip(base.dialogues.order_by("task_id").values_list("task_id", flat=True), [8, 9, 7, 6], strict=True))
    expected = paired(a, b)
    assert goal_test == expected and goal_test.n == 3 and goal_test.only_b == 1
    assert f"{goal_test.p_t:.4f}" in page and f"{goal_test.cohen_dz:.2f}" in page
    summary = comparison.summaries[1]
    assert (summary.usable.usable_records, summary.usable.records) == (15, 15)  # 3 kept dialogues of 5 actions
    assert (summary.usable.kept, summary.usable.dialogues) == (3, 3) and summary.goal == pytest.approx(6)
    assert "In the layout of the paper" in page and "baseline" in page


def test_a_corpus_is_evaluated_as_one_job(demo_tasks, client_for):
    run = run_of_dialogues(Task.objects.all()[:2], name="dsi", turns=TEXTS, dialogue=KEPT)
    Task.objects.update(split="train")
    Dialogue.objects.update(filter_passed=True)
    corpus = CorpusFactory(name="c", filters={"runs": [run.pk], "exclude_simulated": False})
    answer = client_for(Role.RESEARCHER).post(f"/corpora/{corpus.pk}/evaluate/", {"metrics": ["srel"]})
    job = EvaluationJob.objects.get(corpus=corpus)
    assert answer.status_code == 302 and answer["Location"] == f"/evaluations/{job.pk}/"
    assert job.status == JobStatus.DONE
    assert sorted(job.dialogue_ids) == sorted(run.dialogues.values_list("pk", flat=True))
    viewer = client_for(Role.VIEWER)
    page = viewer.get(f"/evaluations/{job.pk}/").content.decode()
    assert "corpus c" in page and "S-IF ×100" in page
    assert f"/evaluations/{job.pk}/" in viewer.get("/evaluations/").content.decode()


def test_nothing_finished_nothing_started(demo_tasks, client_for):
    run = Run.objects.create(name="r", variant="dsi", config={}, prompt_set_version="x", backend="simulated", model="m")
    answer = client_for(Role.RESEARCHER).post(f"/runs/{run.pk}/evaluate/", ALL, follow=True)
    assert "Not started: nothing to evaluate: no finished dialogue" in answer.content.decode()
    assert not EvaluationJob.objects.exists()


def test_episode_table_uses_t_intervals_over_tasks(demo_tasks):
    from scipy import stats

    run = run_of_dialogues(Task.objects.all()[:3], name="dsi", turns=TEXTS, dialogue=KEPT)
    goals = [[8, 6], [9, 9], [4, 6]]  # per task, both agents
    for d, pair in zip(run.dialogues.order_by("task_id"), goals, strict=True):
        for speaker, goal in enumerate(pair):
            EpisodeScore.objects.create(dialogue=d, speaker=speaker, judge_model="j", prompt_version="v",
                                        prompt_sha256="s", bel=8, rel=1, kno=4, sec=0, soc=0, fin=0, goal=goal,
                                        overall=(13 + goal) / 7)  # fmt: skip
    ids = list(run.dialogues.values_list("pk", flat=True))
    table = report.episode_table(ids, report.JudgeVersion("j", "v", 6))
    # self-play means per task: 7, 9, 5
    half = stats.t.ppf(0.975, 2) * 2 / 3**0.5  # s = sqrt((0 + 4 + 4) / 2) = 2
    assert table.rows[0]["GOAL"].mean == pytest.approx(7) and table.rows[0]["GOAL"].half_width == pytest.approx(half)
    assert judges.DIMENSIONS[-1].label == "GOAL"


def test_a_job_card_says_once_that_its_job_ended_and_the_report_listens(demo_tasks, client_for):
    run = run_of_dialogues(Task.objects.all()[:2], name="dsi", turns=TEXTS, dialogue=KEPT)
    researcher = client_for(Role.RESEARCHER)  # who sees the button
    ids = list(run.dialogues.values_list("pk", flat=True))
    job = EvaluationJob.objects.create(scope="run", run=run, dialogue_ids=ids, metrics=["sdiv"], status="running")
    card = {"HX-Request": "true", "HX-Target": f"evaluation-job-{job.pk}"}
    report_page = researcher.get(f"/runs/{run.pk}/report/").content.decode()
    assert 'hx-trigger="evaluation-ended from:body"' in report_page and "Evaluating…" in report_page
    polled = researcher.get(f"/evaluations/{job.pk}/", headers=card)
    assert (
        "HX-Trigger" not in polled and 'hx-trigger="every 2s" hx-ext="morph" hx-swap="morph"' in polled.content.decode()
    )
    panel = researcher.get(f"/runs/{run.pk}/sif/").content.decode()  # one poller per region: the panel, not its card
    assert "every 2s" in panel and f'hx-get="/evaluations/{job.pk}/"' not in panel
    EvaluationJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE)
    ended = researcher.get(f"/evaluations/{job.pk}/", headers=card)
    assert ended["HX-Trigger"] == "evaluation-ended" and "every 2s" not in ended.content.decode()
    # the report's live part, asked for again, has its button back
    again = researcher.get(f"/runs/{run.pk}/report/", headers={"HX-Request": "true", "HX-Target": "report-live"})
    assert "Evaluating…" not in again.content.decode() and '<div id="report-live"' in again.content.decode()
    # the job's own page is the whole page when its live part asks (not the card alone)
    page = researcher.get(f"/evaluations/{job.pk}/", headers={"HX-Request": "true", "HX-Target": "job-live"})
    assert '<div id="job-live"' in page.content.decode() and "Results for these dialogues" in page.content.decode()


def test_an_evaluation_run_refuses_a_sample_outside_the_selection_with_the_reason(demo_tasks, client_for):
    client = client_for(Role.RESEARCHER)
    for sample, reason in (("0", "A sample needs at least 1 task"), ("99", "A sample of 99 is more than the")):
        answer = client.post("/runs/benchmark/new/", {"sample": sample, "split": ""})
        assert answer.status_code == 400 and reason in answer.content.decode()
    assert not Run.objects.exists()
