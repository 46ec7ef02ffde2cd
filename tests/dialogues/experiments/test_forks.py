"""Experiments: forking a dialogue from a turn (what is shared, what changes and from when), counterfactual batches,
and a person playing one side (validated, marked, never passed off as the model's)."""

from __future__ import annotations

import pytest

from dialogues.engine.actions import UnusableAnswer
from dialogues.engine.stepper import human_action
from dialogues.experiments.services import Arm, ForkSettings, batch_seeds, dialogue_fork
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.leases import dialogue_step_begin
from dialogues.runs.models import Branch, Dialogue, DialogueStatus, LLMCall, Run, RunKind, StepRating, Turn
from dialogues.runs.tasks import dialogue_human_step_task
from tests.factories import scenario_tasks, simulated_run

pytestmark = pytest.mark.django_db(transaction=True)

ROOF = "library_roof_fund"  # hard demo tasks: the simulated expert deadlocks and DSI starts NSI at turn 6
TURN_FIELDS = (
    "index", "speaker", "action_type", "argument", "forced", "branch", "reason", "nsi_step", "proposal", "draft",
    "own_utility", "other_utility", "human",
)  # fmt: skip


def finished(codename: str = ROOF, **config) -> Dialogue:
    run = simulated_run(scenario_tasks(codename)[:1], name="parent", config=config)
    return run.dialogues.order_by("attempt").first()


def fork(parent: Dialogue, turn: int | None, seeds=(None,), **settings) -> Run:
    run = dialogue_fork(
        parent_id=parent.pk, turn=turn, arms=[Arm("", ForkSettings(**settings))], seeds=list(seeds), created_by=None
    )
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    return run


def rows(dialogue: Dialogue, **where) -> list[tuple]:
    return list(Turn.objects.filter(dialogue=dialogue, **where).order_by("index").values_list(*TURN_FIELDS))


def snapshot(dialogue: Dialogue) -> tuple:
    ratings = list(StepRating.objects.filter(dialogue=dialogue).order_by("turn__index").values_list("goal_c", "goal_p"))
    calls = list(LLMCall.objects.filter(dialogue=dialogue).order_by("id").values_list("id", "purpose", "turn_index"))
    fresh = Dialogue.objects.get(pk=dialogue.pk)
    return rows(dialogue), ratings, calls, fresh.turns_count, fresh.tokens, fresh.status, fresh.kept


@pytest.fixture
def parent(demo_tasks) -> Dialogue:
    return finished()


def test_a_fork_shares_turns_up_to_k_and_leaves_the_parent_untouched(parent):
    before = snapshot(parent)
    run = fork(parent, 7)
    child = run.dialogues.get()
    assert snapshot(parent) == before
    assert run.kind == RunKind.FORK and child.parent_id == parent.pk and child.fork_turn == 7
    assert rows(child, index__lte=7) == rows(parent, index__lte=7)
    assert set(Turn.objects.filter(dialogue=child, index__lte=7).values_list("inherited", flat=True)) == {True}
    assert not Turn.objects.filter(dialogue=child, index__gt=7, inherited=True).exists()
    shared_ratings = StepRating.objects.filter(dialogue=child, turn__index__lte=7)
    parent_ratings = StepRating.objects.filter(dialogue=parent, turn__index__lte=7, closing=False)
    assert sorted(shared_ratings.values_list("turn__index", "goal_c", "goal_p", "samples")) == sorted(
        parent_ratings.values_list("turn__index", "goal_c", "goal_p", "samples")
    )
    # the fork's calls are its own: none for the shared turns, and its counters count only them
    assert not LLMCall.objects.filter(dialogue=child, turn_index__lte=7).exists()
    child.refresh_from_db()
    assert child.calls_count == LLMCall.objects.filter(dialogue=child).count() > 0
    assert child.turns_count == child.turns.count()
    # no changes and the same seed: the fork replays the parent exactly, which it can only do if the shared
    # turns, ratings and utilities were copied faithfully
    assert rows(child, index__gt=7) == rows(parent, index__gt=7)
    assert child.final_goal_c == parent.final_goal_c


def test_a_closing_rating_is_not_shared_and_the_fork_may_go_on(demo_tasks):
    parent = finished("field_trip_seats", max_turns=4)  # turns 0-3 native, unrated: a closing rating
    last = parent.turns.order_by("-index").first()
    assert parent.end_reason == "turn_limit" and StepRating.objects.filter(turn=last, closing=True).exists()
    child = fork(parent, last.index, config={"max_turns": 12}).dialogues.get()
    assert not StepRating.objects.filter(dialogue=child, closing=True, turn__index=last.index).exists()
    assert child.turns.count() > parent.turns.count()  # the longer limit took effect after the fork point


def test_settings_take_effect_from_the_turn_after_the_fork(parent):
    nsi_at = parent.turns.filter(branch=Branch.NSI).order_by("index").first().index
    assert nsi_at == 6
    no_nsi = fork(parent, 5, config={"disabled_strategies": ["NSI"]}).dialogues.get()
    assert rows(no_nsi, index__lte=5) == rows(parent, index__lte=5)
    sixth = no_nsi.turns.get(index=6)
    assert sixth.branch == Branch.SSI and "NSI is disabled → SSI" in sixth.reason
    assert not no_nsi.turns.filter(branch=Branch.NSI).exists()

    forced = fork(parent, 7, config={"force_strategy": "SSI"}).dialogues.get()
    assert rows(forced, index__lte=7) == rows(parent, index__lte=7)  # the workflow turns before k+1 stay
    later = list(forced.turns.filter(index__gt=7).values_list("branch", "reason"))
    assert later and all(b in (Branch.SSI, Branch.FORCED) for b, _ in later)
    assert "SSI forced by this experiment's settings" in later[0][1]


def test_another_seed_and_changes_are_recorded(parent):
    child = fork(parent, 5, seed=1234, config={"goal_p_high": 9.0}).dialogues.get()
    assert child.seed == 1234 and child.changes == {"seed": 1234, "config": {"goal_p_high": 9.0}}
    assert list(parent.forks.all()) == [child]


def test_invalid_settings_or_turns_create_nothing(parent):
    with pytest.raises(ValueError, match="nsi_goal_c_max must be between 0 and 10"):
        dialogue_fork(
            parent_id=parent.pk,
            turn=3,
            arms=[Arm("", ForkSettings(config={"nsi_goal_c_max": 12}))],
            seeds=[None],
            created_by=None,
        )
    with pytest.raises(ValueError, match="has no turn 99"):
        dialogue_fork(parent_id=parent.pk, turn=99, arms=[Arm("", ForkSettings())], seeds=[None], created_by=None)
    assert not Run.objects.filter(kind=RunKind.FORK).exists()


def test_a_fork_is_an_experiment_no_regeneration_nothing_kept(demo_tasks):
    parent = finished("field_trip_seats")
    run = fork(parent, 5, seed=99, config={"filter_without_nsi": 10.0, "filter_with_nsi": 10.0})
    child = run.dialogues.get()
    assert child.status == DialogueStatus.FINISHED and child.filter_passed is False
    assert run.dialogues.count() == 1 and not child.kept


def test_a_counterfactual_batch_pairs_seeds_across_two_settings(parent):
    seeds = batch_seeds(parent, 5, 0, 3)
    run = dialogue_fork(
        parent_id=parent.pk,
        turn=5,
        arms=[Arm("A", ForkSettings()), Arm("B", ForkSettings(config={"disabled_strategies": ["NSI"]}))],
        seeds=seeds,
        created_by=None,
    )
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    forks = list(run.dialogues.order_by("arm", "seed"))
    assert [f.arm for f in forks] == ["A"] * 3 + ["B"] * 3
    assert sorted(f.seed for f in forks if f.arm == "A") == sorted(f.seed for f in forks if f.arm == "B")
    assert all(f.status == DialogueStatus.FINISHED for f in forks)
    assert all(f.turns.filter(branch=Branch.NSI).exists() for f in forks if f.arm == "A")
    assert not any(f.turns.filter(branch=Branch.NSI).exists() for f in forks if f.arm == "B")


# --- a person plays one side ------------------------------------------------------------------------------


def test_a_person_plays_one_side_and_the_expert_the_other(parent, make_user):
    person = make_user(None, "player")
    run = fork(parent, 5, human_side=0)  # turn 6 is agent 1's: the fork waits for the person at once
    child = run.dialogues.get()
    assert child.status == DialogueStatus.PAUSED and child.turns.count() == 6
    dialogue_human_step_task(child.pk, "speak", "Let us split the cost, and I will credit you.", person.pk)
    mine = child.turns.get(index=6)
    assert mine.human and mine.branch == Branch.HUMAN and mine.author == person and not mine.inherited
    assert mine.argument == "Let us split the cost, and I will credit you."
    assert "is played by a person" in mine.reason
    # rated like any turn after the native start, but no model call wrote it
    assert StepRating.objects.filter(turn=mine).exists()
    assert set(LLMCall.objects.filter(dialogue=child, turn_index=6).values_list("purpose", flat=True)) == {"rating"}
    # the expert answered for the other side and the dialogue waits for the person again
    child.refresh_from_db()
    answer = child.turns.get(index=7)
    assert answer.speaker == 1 and not answer.human and answer.branch != Branch.HUMAN
    assert child.status == DialogueStatus.PAUSED and child.turns.count() == 8
    assert dialogue_step_begin(dialogue_id=child.pk).waiting  # a plain step does not play the person's side


def test_a_persons_action_is_validated_like_a_models(parent):
    with pytest.raises(UnusableAnswer, match="empty argument for speak"):
        human_action("speak", "   ")
    with pytest.raises(UnusableAnswer, match="unknown action_type"):
        human_action("shout", "hello")
    with pytest.raises(UnusableAnswer, match="at most 4,000"):
        human_action("speak", "x" * 4001)
    assert human_action("leave", "").action_type == "leave"
    run = dialogue_fork(
        parent_id=parent.pk, turn=5, arms=[Arm("", ForkSettings(human_side=1))], seeds=[None], created_by=None
    )
    child = run.dialogues.get()  # turn 6 is agent 1's, played by the expert
    refused = dialogue_step_begin(dialogue_id=child.pk, human=True)
    assert "not the person's turn" in refused.reason and child.turns.count() == 6


# --- the command line -------------------------------------------------------------------------------------


def fork_command(*args) -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("fork", *[str(a) for a in args], stdout=out)
    return out.getvalue()


def test_fork_from_the_command_line(parent):
    single = fork_command(parent.pk, "--turn", 5, "--disable", "NSI", "--set", "max_turns=12")
    child = Dialogue.objects.get(parent=parent)
    assert "disabled strategies: — → NSI" in single and "turn limit: 20 → 12" in single
    assert child.changes == {"config": {"max_turns": 12, "disabled_strategies": ["NSI"]}}
    assert f"#{child.pk} forks seed {parent.seed}: finished" in single

    batch = fork_command(parent.pk, "--turn", 5, "--batch", 2, "--b-force", "SSI")
    assert "setting A     2 / 2" in batch and "setting B     2 / 2" in batch
    run = Run.objects.filter(kind=RunKind.FORK).order_by("-id").first()
    assert sorted(run.dialogues.values_list("arm", flat=True)) == ["A", "A", "B", "B"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "bogus=1"), "not a setting a fork can change"),
        (("--set", "max_turns=many"), "not a valid int"),
        (("--batch", 2), "settings A and B are the same"),
        (("--set", "nsi_goal_c_max=12"), "nsi_goal_c_max must be between 0 and 10"),
    ],
)
def test_fork_command_refusals(parent, args, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        fork_command(parent.pk, "--turn", 5, *args)
    assert not Run.objects.filter(kind=RunKind.FORK).exists()
