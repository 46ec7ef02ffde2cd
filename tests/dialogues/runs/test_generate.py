"""The CLI and the persisted step service: generate with the simulated expert, step, failures, attempts."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from dialogues.engine.config import RunConfig
from dialogues.engine.strategy import Branch, select_strategy
from dialogues.library.models import Task
from dialogues.runs import models
from dialogues.runs.models import Dialogue, DialogueStatus, LLMCall, Run, StepRating, Turn
from tests.factories import created_run, served_run, server_backend
from tests.support import llm_answers as a
from tests.support.llm_server import ScriptedLLMServer
from tests.support.llm_unusable import UNUSABLE

pytestmark = pytest.mark.django_db(transaction=True)


def generate(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("generate", *args, stdout=out, stderr=err)
    return out.getvalue()


def assert_turns_contiguous_and_unique(run: Run) -> None:
    for dialogue in run.dialogues.all():
        indices = list(dialogue.turns.order_by("index").values_list("index", flat=True))
        assert indices == list(range(len(indices))), f"dialogue {dialogue.pk}: {indices}"
        speakers = list(dialogue.turns.order_by("index").values_list("speaker", flat=True))
        assert speakers == [i % 2 for i in range(len(speakers))]


@pytest.mark.slow
def test_generate_hard_with_the_simulated_expert(imported_sotopia):
    output = generate("--tasks", "hard", "--source", "sotopia", "--simulated", "--judge-samples", "3")
    run = Run.objects.get()
    assert run.simulated and run.model == "simulated-expert" and run.tasks.count() == 70
    assert "70 tasks" in output and "SIMULATED" in output
    assert not run.dialogues.exclude(status=DialogueStatus.FINISHED).exists()
    assert_turns_contiguous_and_unique(run)
    # exactly one kept attempt per task; regenerated attempts exist and are numbered in order
    kept = run.dialogues.filter(kept=True).values("task").annotate(n=Count("id"))
    assert kept.count() == 70 and all(row["n"] == 1 for row in kept)
    assert run.dialogues.count() > 70
    for task_id in run.dialogues.values_list("task_id", flat=True).distinct():
        attempts = list(
            run.dialogues.filter(task_id=task_id).order_by("attempt").values_list("attempt", "filter_passed")
        )
        assert [n for n, _ in attempts] == list(range(len(attempts)))
        assert all(passed is False for _, passed in attempts[:-1])  # regenerated only after a failed filter
    # NSI is used exactly where the rating after turn 5 calls for it, starting at turn 6
    config = RunConfig.from_json(run.config)
    for dialogue in run.dialogues.all():
        rating = StepRating.objects.get(dialogue=dialogue, turn__index=5)
        expected = select_strategy(rating.goal_c, rating.goal_p, config).branch
        turn6 = dialogue.turns.get(index=6)
        assert (turn6.branch == Branch.NSI) == (expected == Branch.NSI)
        assert dialogue.nsi_used == (expected == Branch.NSI)
    # every LLM call is stored and labelled with the simulated model
    assert set(LLMCall.objects.values_list("model", flat=True)) == {"simulated-expert"}
    assert all(d.simulated for d in run.dialogues.all())


def test_generate_codenames_and_variants(demo_tasks):
    generate(
        "--tasks", "library_roof_fund", "vintage_bike_sale", "--simulated", "--variant", "raw", "--judge-samples", "3"
    )
    run = Run.objects.get()
    assert run.variant == "raw" and run.tasks.count() == 3
    assert not Turn.objects.filter(dialogue__run=run, branch__in=["SSI", "NSI"]).exists()
    assert_turns_contiguous_and_unique(run)


def test_generate_native_turns_sets_where_the_workflow_starts(demo_tasks):
    generate(
        "--tasks", "library_roof_fund", "--simulated", "--variant", "nsi", "--native-turns", "2", "--attempts", "1"
    )
    run = Run.objects.get()
    assert RunConfig.from_json(run.config).initial_native_turns == 2
    for dialogue in run.dialogues.all():
        branches = list(dialogue.turns.order_by("index").values_list("branch", flat=True))
        assert branches[:3] == [Branch.NSC, Branch.NSC, Branch.NSI]  # the NSI variant's workflow starts at turn 2
        assert dialogue.ratings.values_list("turn__index", flat=True).first() == 1  # the first rating: after turn 1
    with pytest.raises(CommandError, match="initial_native_turns must be at least 1"):
        generate("--tasks", "library_roof_fund", "--simulated", "--native-turns", "0")


def test_generate_takes_task_ids_beside_codenames(demo_tasks):
    one = Task.objects.filter(scenario__codename="vintage_bike_sale").order_by("id").last()
    generate("--tasks", "library_roof_fund", one.external_id, "--simulated", "--attempts", "1", "--judge-samples", "3")
    chosen = Run.objects.get().tasks.all()
    assert set(chosen) == {*Task.objects.filter(scenario__codename="library_roof_fund"), one}


def test_generate_refuses_unknown_codenames_and_empty_selections(demo_tasks):
    with pytest.raises(CommandError, match="no tasks with codename or id nope"):
        generate("--tasks", "nope", "--simulated")
    with pytest.raises(CommandError, match="no task matches"):
        generate("--tasks", "hard", "--split", "eval", "--simulated")


def test_generate_refuses_a_model_the_server_does_not_serve(demo_tasks, settings):
    with ScriptedLLMServer("Qwen2.5-72B-Instruct") as server:
        settings.OMEGA_LLM_BASE_URLS = [server.base_url]
        settings.OMEGA_LLM_MODEL = "Qwen25-72B-Instruct"
        with pytest.raises(CommandError, match="does not serve the model 'Qwen25-72B-Instruct'"):
            generate("--tasks", "all")
    assert not Run.objects.exists()  # refused before anything was created


def test_step_command_advances_one_turn_and_says_why(demo_tasks):
    task = Task.objects.get(external_id="omega-demo-task-01")
    run = created_run([task], name="step")
    dialogue = run.dialogues.get()
    outputs = []
    for _ in range(6):
        out = io.StringIO()
        call_command("step", dialogue.pk, stdout=out)
        outputs.append(out.getvalue())
    assert outputs[0].startswith("Turn #0 · Lena Okafor · NSC")
    assert "why: native start" in outputs[0]
    assert "rating: goal_c 7.00, goal_p 7.17, 3/3 samples valid" in outputs[5]
    out = io.StringIO()
    call_command("step", dialogue.pk, stdout=out)
    assert "Turn #6" in out.getvalue() and "NSI · resource_assessment" in out.getvalue()
    assert "goal_c ≤ 7.5 and goal_p < 8.5 → NSI" in out.getvalue()
    with pytest.raises(CommandError, match="no dialogue #999999"):
        call_command("step", 999999)


@pytest.mark.parametrize(("bad", "message"), UNUSABLE)
def test_a_dialogue_that_keeps_getting_unusable_answers_fails_with_the_reason(demo_tasks, bad, message):
    task = Task.objects.get(external_id="omega-demo-task-03")
    with ScriptedLLMServer() as server:
        server.responder = lambda purpose, body: bad
        run = created_run([task], name="garbage", config={"judge_samples": 5}, backend=server_backend(server))
        dialogue = run.dialogues.get()
        with pytest.raises(CommandError) as failed:
            call_command("step", dialogue.pk, stdout=io.StringIO())
    assert "action.native at turn 0: no usable answer after 4 tries" in str(failed.value)
    dialogue.refresh_from_db()
    assert dialogue.status == DialogueStatus.FAILED
    assert "no usable answer" in dialogue.failure_reason and message in dialogue.failure_reason
    assert not dialogue.turns.exists()  # nothing replaced by a default action
    calls = LLMCall.objects.filter(dialogue=dialogue)
    assert calls.count() == 4 and all(message in c.error for c in calls)
    assert json.loads(json.dumps(calls.first().messages))[0]["role"] == "user"


def test_repeating_a_saved_step_writes_nothing_twice(demo_tasks):
    import asyncio

    from dialogues.engine.stepper import advance
    from dialogues.llm.simulated import SimulatedExpert
    from dialogues.runs.leases import dialogue_step_begin
    from dialogues.runs.lifecycle import run_dispatch
    from dialogues.runs.steps import dialogue_step_save

    task = Task.objects.get(external_id="omega-demo-task-01")
    run = created_run([task], name="twice")
    (dispatch,) = run_dispatch(run_id=run.pk)
    begun = dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=dispatch.token)
    result = asyncio.run(advance(begun.state, SimulatedExpert()))
    first = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token
    )
    assert first.saved and first.next_token
    # the same execution tries to save again: its lease was handed on, so nothing is written
    again = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token
    )
    assert not again.saved and "taken over" in again.reason
    # a redelivered task with the current token recomputes turn 0 and tries to save it: unique, so nothing
    redo = dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=first.next_token)
    duplicate = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=redo.step_attempt, result=result, token=redo.token
    )
    assert not duplicate.saved and "saved before" in duplicate.reason
    dialogue = Dialogue.objects.get(pk=dispatch.dialogue_id)
    assert dialogue.turns.count() == 1 and LLMCall.objects.filter(dialogue=dialogue).count() == len(result.calls)
    assert dialogue.calls_count == len(result.calls) and dialogue.tokens > 0


def test_model_branch_choices_match_the_engine():
    assert {c.value for c in models.Branch} == {b.value for b in Branch}


def test_attempts_regenerate_and_keep_the_best(demo_tasks):
    """Every attempt fails the filter (goal stuck at 8.2 without NSI): 4 attempts, the best one kept."""
    task = Task.objects.get(external_id="omega-demo-task-04")

    def rating(turn, n):
        return a.uniform(8, 8, n, end=turn >= 7)

    with ScriptedLLMServer() as server:
        server.responder = a.responder(rating)
        run = served_run(server, [task])
    attempts = list(run.dialogues.order_by("attempt"))
    assert [d.attempt for d in attempts] == [0, 1, 2, 3]
    assert all(d.filter_passed is False and d.final_goal_c == 8.0 for d in attempts)
    assert [d.kept for d in attempts] == [True, False, False, False]  # a tie: the earliest is kept
    assert "fails: final goal_c 8.00 vs 8.5 (no NSI)" in attempts[0].filter_note
    run.refresh_from_db()
    assert run.status == "finished"
    assert Dialogue.objects.filter(run=run, status=DialogueStatus.FINISHED).count() == 4


def test_a_failed_attempt_starts_the_next_one_and_the_best_finished_attempt_is_kept(demo_tasks):
    """Attempt 0 finishes but fails the filter; attempt 1 fails at a step: no attempt is left (attempts=2), so
    the finished attempt 0 is kept."""
    task = Task.objects.get(external_id="omega-demo-task-04")
    good = a.responder(lambda turn, n: a.uniform(8, 8, n, end=turn >= 6))
    calls = {"n": 0}

    def responder(purpose, body):
        calls["n"] += 1
        if calls["n"] > 12 and purpose == "action.native":  # the second attempt only gets garbage
            return "garbage"
        return good(purpose, body)

    with ScriptedLLMServer() as server:
        server.responder = responder
        run = served_run(server, [task], config={"attempts": 2})
    first, second = run.dialogues.order_by("attempt")
    assert (first.status, first.filter_passed, first.kept) == ("finished", False, True)
    assert (second.status, second.kept) == ("failed", False)
