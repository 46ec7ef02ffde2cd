"""Runs in flight: bounded dispatch, leases and their takeover, pause / resume / cancel, the token budget, the
progress counted from rows, and the cost estimate."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.stepper import advance
from dialogues.library.models import Task
from dialogues.llm.simulated import SimulatedExpert
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.estimates import run_estimate
from dialogues.runs.leases import Begun, dialogue_step_begin, dialogue_step_prepared
from dialogues.runs.lifecycle import (
    dialogue_cancel,
    dialogue_pause,
    dialogue_resume,
    run_cancel,
    run_dispatch,
    run_pause,
    run_resume,
    runs_reconcile,
)
from dialogues.runs.models import Dialogue, DialogueStatus, Run, RunStatus
from dialogues.runs.selectors import run_progress
from dialogues.runs.steps import dialogue_step_save, run_tokens_used
from tests.factories import created_run

pytestmark = pytest.mark.django_db(transaction=True)


def one_step(dispatch):
    begun = dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=dispatch.token)
    assert isinstance(begun, Begun), begun
    result = asyncio.run(advance(begun.state, SimulatedExpert()))
    return begun, dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token
    )


def test_dispatch_keeps_at_most_max_in_flight(demo_tasks):
    run = created_run(Task.objects.all(), max_in_flight=3)
    first = run_dispatch(run_id=run.pk)
    assert len(first) == 3 and run_dispatch(run_id=run.pk) == []
    assert run.dialogues.filter(status=DialogueStatus.RUNNING).count() == 3
    assert all(d.lease_token and d.lease_until > timezone.now() for d in run.dialogues.filter(status="running"))


def test_a_live_lease_keeps_others_out_and_a_stale_one_is_taken_over(demo_tasks):
    run = created_run(Task.objects.filter(external_id="omega-demo-task-03"))
    (dispatch,) = run_dispatch(run_id=run.pk)
    assert dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token="someone-else").reason == (
        "another worker holds the lease"
    )
    assert runs_reconcile() == []  # nothing stale
    Dialogue.objects.filter(pk=dispatch.dialogue_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    (takeover,) = runs_reconcile()
    assert takeover.dialogue_id == dispatch.dialogue_id and takeover.token != dispatch.token
    # the old token is refused now that the new holder's lease is live
    assert dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=dispatch.token).reason == (
        "another worker holds the lease"
    )
    _, saved = one_step(takeover)
    assert saved.saved and saved.next_token


def test_a_step_whose_lease_was_taken_over_is_dropped(demo_tasks):
    run = created_run(Task.objects.filter(external_id="omega-demo-task-03"))
    (dispatch,) = run_dispatch(run_id=run.pk)
    begun = dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=dispatch.token)
    result = asyncio.run(advance(begun.state, SimulatedExpert()))
    # the worker was thought dead: its lease expired and the reconciler gave the dialogue to someone else
    Dialogue.objects.filter(pk=dispatch.dialogue_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    (takeover,) = runs_reconcile()
    late = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token
    )
    assert not late.saved and Dialogue.objects.get(pk=dispatch.dialogue_id).turns.count() == 0
    _, saved = one_step(takeover)
    assert saved.saved and Dialogue.objects.get(pk=dispatch.dialogue_id).turns.count() == 1


def test_pause_parks_after_the_step_in_flight_and_resume_goes_on(demo_tasks):
    run = created_run(Task.objects.all()[:2])
    dispatches = run_dispatch(run_id=run.pk)
    begun = dialogue_step_begin(dialogue_id=dispatches[0].dialogue_id, token=dispatches[0].token)
    run_pause(run_id=run.pk)
    result = asyncio.run(advance(begun.state, SimulatedExpert()))
    saved = dialogue_step_save(
        dialogue_id=dispatches[0].dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token
    )
    assert saved.saved and saved.next_token is None  # the step in flight is kept, then the dialogue waits
    assert Dialogue.objects.get(pk=dispatches[0].dialogue_id).status == DialogueStatus.PAUSED
    # the other dialogue's queued step finds the run paused and parks it too
    assert dialogue_step_begin(dialogue_id=dispatches[1].dialogue_id, token=dispatches[1].token).reason == (
        "the run is paused"
    )
    assert Dialogue.objects.get(pk=dispatches[1].dialogue_id).status == DialogueStatus.PAUSED
    resumed = run_resume(run_id=run.pk)
    assert {d.dialogue_id for d in resumed} == {d.dialogue_id for d in dispatches}
    status = run_coroutine(lambda llms: run_to_end(run.pk, llms))
    assert status == RunStatus.FINISHED
    assert Dialogue.objects.get(pk=dispatches[0].dialogue_id).turns.first().index == 0


def test_cancel_drops_the_step_in_flight(demo_tasks):
    run = created_run(Task.objects.all()[:2])
    (dispatch, _) = run_dispatch(run_id=run.pk)
    begun = dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=dispatch.token)
    run_cancel(run_id=run.pk)
    result = asyncio.run(advance(begun.state, SimulatedExpert()))
    saved = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token
    )
    assert not saved.saved and "cancelled" in saved.reason
    assert set(run.dialogues.values_list("status", flat=True)) == {DialogueStatus.CANCELLED}
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_dialogue_pause_resume_cancel(demo_tasks):
    run = created_run(Task.objects.all()[:2], max_in_flight=1)
    (dispatch,) = run_dispatch(run_id=run.pk)
    dialogue_pause(dialogue_id=dispatch.dialogue_id)
    assert Dialogue.objects.get(pk=dispatch.dialogue_id).status == DialogueStatus.PAUSED
    other = run_dispatch(run_id=run.pk)  # its slot is free for the other dialogue
    assert len(other) == 1 and other[0].dialogue_id != dispatch.dialogue_id
    dialogue_cancel(dialogue_id=other[0].dialogue_id)
    resumed = dialogue_resume(dialogue_id=dispatch.dialogue_id)
    assert [d.dialogue_id for d in resumed] == [dispatch.dialogue_id]
    assert run_coroutine(lambda llms: run_to_end(run.pk, llms)) == RunStatus.FINISHED
    statuses = dict(run.dialogues.values_list("id", "status"))
    assert statuses[other[0].dialogue_id] == DialogueStatus.CANCELLED
    assert statuses[dispatch.dialogue_id] == DialogueStatus.FINISHED


def test_token_budget_pauses_the_run(demo_tasks):
    run = created_run(Task.objects.all(), token_budget=20_000)
    status = run_coroutine(lambda llms: run_to_end(run.pk, llms))
    run.refresh_from_db()
    assert status == RunStatus.PAUSED and run.status_reason.startswith("token budget reached")
    assert run_tokens_used(run.pk) >= 20_000
    assert run_tokens_used(run.pk) == sum(run.dialogues.values_list("tokens", flat=True))
    assert not run.dialogues.filter(status=DialogueStatus.RUNNING).exists()
    with pytest.raises(ValueError, match="give a larger budget"):
        run_resume(run_id=run.pk)
    run_resume(run_id=run.pk, token_budget=10**9)
    assert run_coroutine(lambda llms: run_to_end(run.pk, llms)) == RunStatus.FINISHED


def test_progress_is_counted_from_rows(demo_tasks):
    run = created_run(Task.objects.all())
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    progress = run_progress(Run.objects.get(pk=run.pk))
    assert progress["tasks"] == 7 and progress["settled"] == 7 and progress["kept"] == 7
    assert progress["finished"] == progress["attempts"] >= 7 and progress["running"] == 0
    assert progress["turns"] == sum(d.turns.count() for d in run.dialogues.all())
    assert progress["calls"] > progress["turns"] and progress["tokens"] > 0


def test_estimate_from_structure_then_refined_by_finished_attempts(demo_tasks):
    config = RunConfig(judge_samples=3)
    prior = run_estimate(config=config, tasks=10, hard=5, model="simulated-expert")
    assert prior.measured_attempts == 0 and prior.requests > 10 * 15
    raw = run_estimate(
        config=RunConfig(variant=Variant.RAW, judge_samples=3), tasks=10, hard=5, model="simulated-expert"
    )
    assert raw.requests < prior.requests  # no negotiation workflow
    run = created_run(Task.objects.all())
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    refined = run_estimate(config=config, tasks=10, hard=5, model="simulated-expert")
    assert refined.measured_attempts == run.dialogues.count()
    assert "refined from" in refined.describe() and refined.requests != prior.requests


def test_call_counters_agree_with_the_rows(demo_tasks):
    from dialogues.runs.models import LLMCall

    run = created_run(Task.objects.all())
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    for dialogue in run.dialogues.all():
        calls = LLMCall.objects.filter(dialogue=dialogue)
        assert dialogue.calls_count == calls.count()
        assert dialogue.tokens == sum(c.prompt_tokens + c.completion_tokens for c in calls)


def test_runs_command(demo_tasks, settings):
    import io

    from django.core.management import CommandError, call_command

    settings.CELERY_BROKER_URL = "memory://"  # the embedded mode: resume leaves the run to the serving process
    run = created_run(Task.objects.all()[:2])

    def runs(*args):
        out = io.StringIO()
        call_command("runs", *[str(a) for a in args], stdout=out)
        return out.getvalue()

    assert f"#{run.pk}" in runs("list")
    assert "running: 0/2 tasks settled" in runs("status", run.pk)
    assert f"Run #{run.pk} paused (paused by a user)" in runs("pause", run.pk)
    assert f"Run #{run.pk} running" in runs("resume", run.pk)
    dialogue = run.dialogues.first()
    assert "paused" in runs("pause", dialogue.pk, "--dialogue")
    assert "cancelled" in runs("cancel", run.pk)
    with pytest.raises(CommandError, match="no run #999999"):
        runs("status", 999999)


def test_a_task_is_settled_only_when_none_of_its_attempts_is_left_to_run(demo_tasks):
    run = created_run(Task.objects.all()[:2], config={"keep_best": False, "attempts": 1})
    assert run_progress(run)["settled"] == 0
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    assert run_progress(Run.objects.get(pk=run.pk))["settled"] == 2


def test_a_save_begins_the_next_step_for_the_process_that_goes_on(demo_tasks):
    """The save of a step hands the lease to the next step's token, counts its attempt and keeps the state it wrote,
    so the same process goes on without reading anything back; any other process begins from the rows."""
    run = created_run(Task.objects.filter(external_id="omega-demo-task-03"))
    (dispatch,) = run_dispatch(run_id=run.pk)
    begun = dialogue_step_begin(dialogue_id=dispatch.dialogue_id, token=dispatch.token)
    result = asyncio.run(advance(begun.state, SimulatedExpert()))
    saved = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id, step_attempt=begun.step_attempt, result=result, token=begun.token, begun=begun
    )
    row = Dialogue.objects.get(pk=dispatch.dialogue_id)
    assert saved.saved and row.lease_token == saved.next_token and row.step_attempts == begun.step_attempt + 1
    assert row.lease_until > timezone.now() and row.turns_count == 1 and row.calls_count == len(result.calls)
    assert dialogue_step_prepared(dialogue_id=dispatch.dialogue_id + 1, token=saved.next_token) is None
    following = dialogue_step_prepared(dialogue_id=dispatch.dialogue_id, token=saved.next_token)
    assert following.token == saved.next_token and following.step_attempt == row.step_attempts
    assert following.state is result.state and following.run_id == run.pk
    assert dialogue_step_prepared(dialogue_id=dispatch.dialogue_id, token=saved.next_token) is None  # taken once
    # the next step goes on; meanwhile the lease was taken over, so its save is dropped and writes nothing
    second = asyncio.run(advance(following.state, SimulatedExpert()))
    Dialogue.objects.filter(pk=dispatch.dialogue_id).update(lease_until=timezone.now() - timedelta(seconds=1))
    (takeover,) = runs_reconcile()
    late = dialogue_step_save(
        dialogue_id=dispatch.dialogue_id,
        step_attempt=following.step_attempt,
        result=second,
        token=following.token,
        begun=following,
    )
    assert not late.saved and "taken over" in late.reason
    row.refresh_from_db()
    assert row.turns_count == 1 and row.lease_token == takeover.token and row.turns.count() == 1


def test_each_common_step_writes_exactly_its_turn_rating_and_calls(demo_tasks):
    """The common save (one statement on PostgreSQL) against what each step computed: the turn with its fields,
    the rating on the turn it rates (the new one, or an older one), the calls under the step's attempt, and the
    counters, for every kind of step a dialogue takes until it ends."""
    from dialogues.runs.models import LLMCall, StepRating, Turn

    run = created_run(Task.objects.filter(external_id="omega-demo-task-03"))
    (dispatch,) = run_dispatch(run_id=run.pk)
    did = dispatch.dialogue_id
    begun = dialogue_step_begin(dialogue_id=did, token=dispatch.token)
    kinds = set()
    while True:
        result = asyncio.run(advance(begun.state, SimulatedExpert()))
        before = Dialogue.objects.get(pk=did)
        saved = dialogue_step_save(
            dialogue_id=did, step_attempt=begun.step_attempt, result=result, token=begun.token, begun=begun
        )
        assert saved.saved, saved.reason
        if saved.next_token is None:  # the last step (the full path) ends it
            break
        kinds.add("turn and its rating" if result.rating is not None else "turn")
        after = Dialogue.objects.get(pk=did)
        calls = LLMCall.objects.filter(dialogue_id=did, step_attempt=begun.step_attempt).order_by("id")
        assert [(c.purpose, c.turn_index, c.messages, c.responses, c.prompt_tokens) for c in calls] == [
            (c.purpose, c.turn_index, c.messages, c.responses, c.prompt_tokens) for c in result.calls
        ]
        assert after.calls_count - before.calls_count == len(result.calls)
        assert after.tokens - before.tokens == sum(c.prompt_tokens + c.completion_tokens for c in result.calls)
        if result.turn is not None:
            turn = Turn.objects.get(dialogue_id=did, index=result.turn.index)
            assert (turn.speaker, turn.action_type, turn.argument, turn.branch, turn.own_utility) == (
                result.turn.speaker,
                result.turn.action.action_type.value,
                result.turn.action.argument,
                result.turn.branch.value,
                result.turn.own_utility,
            )
        assert after.turns_count - before.turns_count == (result.turn is not None)
        if result.rating is not None:
            rating = StepRating.objects.get(turn__dialogue_id=did, turn__index=result.rating_index)
            assert rating.dialogue_id == did and rating.samples == result.rating["samples"]
            assert (rating.goal_c, rating.goal_p) == (result.rating["goal_c"], result.rating["goal_p"])
        assert after.lease_token == saved.next_token and after.step_attempts == begun.step_attempt + 1
        begun = dialogue_step_prepared(dialogue_id=did, token=saved.next_token)
    assert kinds == {"turn", "turn and its rating"}  # the shapes of the one statement on PostgreSQL
    finished = Dialogue.objects.get(pk=did)
    assert finished.status == DialogueStatus.FINISHED
    assert finished.calls_count == LLMCall.objects.filter(dialogue_id=did).count()
    assert finished.turns_count == Turn.objects.filter(dialogue_id=did).count()
