"""Numbers a researcher can publish: the usable ratio as the paper's Table 4 counts it (training records in kept
attempts ÷ training records in all finished attempts) on the report, in Runs compared and in the CLI; and late
agreements — a confirm_proposal the 20-turn limit left no room to exit — counted on the run page and the report."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from dialogues.library.models import Task
from dialogues.runs.models import DialogueStatus
from dialogues.runs.selectors import run_progress
from evaluation import report
from omega_web.roles import Role
from tests.factories import DialogueFactory, RunFactory, served_run
from tests.support import llm_answers as a
from tests.support.llm_server import ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)

LEAVE = {"action_type": "leave", "argument": ""}


def test_the_usable_ratio_counts_training_records(demo_tasks, client_for):
    task_a, task_b = Task.objects.order_by("pk")[:2]
    run = RunFactory(name="dsi")
    # task A: attempt 0 failed the filter (5 spoken actions and a leave: 6 records); attempt 1 kept (4 records)
    DialogueFactory(run=run, task=task_a, attempt=0, filter_passed=False, turns=["a"] * 5 + [LEAVE])
    DialogueFactory(run=run, task=task_a, attempt=1, filter_passed=True, kept=True, turns=["b"] * 4)
    # task B: attempt 0 stopped at a step (not a finished attempt: no records anywhere); attempt 1 kept, with
    # turn 2 typed by a person (in the histories, never a record): 5 turns, 4 records
    DialogueFactory(run=run, task=task_b, attempt=0, status=DialogueStatus.FAILED, turns=["x"] * 3)
    typed = {"argument": "typed", "human": True}
    DialogueFactory(run=run, task=task_b, attempt=1, filter_passed=True, kept=True, turns=["c", "d", typed, "e", "f"])
    # by hand: all finished attempts 6 + 4 + 4 = 14 records, kept 4 + 4 = 8; dialogues 2 kept of 3 finished
    numbers = report.usable(run)
    assert (numbers.records, numbers.usable_records) == (14, 8)
    assert numbers.ratio == pytest.approx(8 / 14)
    assert (numbers.kept, numbers.dialogues) == (2, 3) and numbers.dialogue_ratio == pytest.approx(2 / 3)
    assert (numbers.late_agreements, numbers.late_only) == (0, 0)

    viewer = client_for(Role.VIEWER)
    page = viewer.get(f"/runs/{run.pk}/report/").content.decode()
    assert "57.1%" in page and "8 training records in kept attempts ÷ 14 in all finished attempts" in page
    assert "66.7%" in page and "2 kept ÷ 3 finished attempts" in page
    rows = list(csv.DictReader(io.StringIO(viewer.get(f"/runs/{run.pk}/report/usable.csv").content.decode())))
    assert len(rows) == 1 and (rows[0]["records"], rows[0]["usable_records"]) == ("14", "8")
    assert float(rows[0]["usable_ratio"]) == pytest.approx(8 / 14) and rows[0]["kept_attempts"] == "2"

    other = RunFactory(name="raw", variant="raw")
    DialogueFactory(run=other, task=task_a, kept=True, filter_passed=True, turns=["y"] * 3)
    compared = report.compare_runs([run, other])
    assert [(s.usable.usable_records, s.usable.records) for s in compared.summaries] == [(8, 14), (3, 3)]
    page = viewer.get(f"/evaluations/compare/?run={run.pk}&run={other.pk}").content.decode()
    assert ">57.1%<" in page and ">100.0%<" in page and "2 / 3" in page and "66.7%" in page

    lines = report.usable_lines(numbers)
    assert lines[0] == (
        "Usable ratio (paper Table 4, training records): 57.1% = 8 records in kept attempts / 14 in all finished "
        "attempts"
    )
    assert lines[1] == "Dialogue ratio: 66.7% = 2 kept / 3 finished attempts"


def deadlock_then_agreement(turn: int, n: int) -> list[str]:
    """Stuck at 7 after turn 5 (NSI starts); 9 after the agreement, votes to end: the filter's goal is met."""
    if turn == 5:
        return a.uniform(7, 7, n)
    return a.uniform(9, 9, n, end=True)


@pytest.mark.parametrize(
    ("overrun", "late"),
    [
        pytest.param(0, 1, id="paper-limit-20-late"),
        pytest.param(3, 0, id="script-overrun-3-exits"),
    ],
)
def test_a_confirm_at_turn_17_is_a_late_agreement_failing_only_for_that(demo_tasks, client_for, overrun, late):
    task = Task.objects.get(external_id="omega-demo-task-04")
    # present, present, then revisions until the first confirm lands on turn 17: the exit needs turns 18-21
    proposals = iter(["revise_proposal"] * 5 + ["confirm_proposal"])
    with ScriptedLLMServer() as server:
        server.responder = a.responder(deadlock_then_agreement, proposals=proposals)
        run = served_run(server, [task], config={"attempts": 1, "exit_overrun_turns": overrun})
    dialogue = run.dialogues.get()
    first_confirm = dialogue.turns.filter(proposal="confirm_proposal").exclude(nsi_step="exit_confirm").get()
    assert first_confirm.index == 17 and dialogue.final_goal_c == 9.0 and dialogue.nsi_used
    if late:
        assert dialogue.end_reason == "turn_limit" and dialogue.turns.count() == 20
        assert dialogue.filter_passed is False and "the agents did not both leave" in dialogue.filter_note
    else:
        assert dialogue.end_reason == "both_left" and dialogue.filter_passed is True and dialogue.kept

    progress = run_progress(run)
    assert (progress["late_agreements"], progress["late_only"]) == (late, late)
    numbers = report.usable(run)
    assert (numbers.late_agreements, numbers.late_only) == (late, late)

    viewer = client_for(Role.VIEWER)
    run_page = viewer.get(f"/runs/{run.pk}/").content.decode()
    assert "late agreements" in run_page
    report_page = viewer.get(f"/runs/{run.pk}/report/").content.decode()
    assert f"<dt>Late agreements</dt>\n    <dd>{late} " in report_page
    out = io.StringIO()
    call_command("runs", "status", str(run.pk), stdout=out)
    assert f"late agreements {late} ({late} failed only for that)" in out.getvalue()
    if late:
        assert "1 failed only for that" in run_page
        assert "exit_overrun_turns" in report_page
