"""The planner's experiment rules, as pure functions of the state: a person's moves, strategies forced or
disabled, and the configuration that carries them."""

from __future__ import annotations

import pytest

from dialogues.engine.actions import Action, ActionType
from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.plan import MoveKind, plan
from dialogues.engine.state import DialogueState, Turn
from dialogues.engine.strategy import Branch

from .conftest import TASK


def rating(goal_c: float, goal_p: float, *, end: bool = False) -> dict:
    sample = {"goal_c": goal_c, "goal_p": goal_p, "votes_to_end": end}
    return {"samples": [sample] * 3, "valid": 3, "requested": 3, "goal_c": goal_c, "goal_p": goal_p, "terminate": end}


def state_after(n: int, last_rating: dict | None = None, **options) -> DialogueState:
    """n native turns (speak), the last one rated with `last_rating`."""
    human_side = options.pop("human_side", None)
    turns = tuple(
        Turn(i, i % 2, Action(ActionType.SPEAK, f"line {i}"), Branch.NSC, rating=last_rating if i == n - 1 else None)
        for i in range(n)
    )
    return DialogueState(TASK, RunConfig(**options), turns, seed=1, human_side=human_side)


def test_the_persons_side_waits_and_the_other_side_is_planned_as_usual():
    waiting = plan(state_after(6, rating(8.0, 8.0), human_side=0))
    assert waiting.kind == MoveKind.HUMAN and waiting.branch == Branch.HUMAN and waiting.rate_after
    assert "Ana Ruiz is played by a person" in waiting.reason and "→ SSI" in waiting.reason  # what it would have been
    expert = plan(state_after(6, rating(8.0, 8.0), human_side=1))
    assert expert.kind == MoveKind.ACT and expert.branch == Branch.SSI


def test_native_start_human_turns_are_rated_only_where_the_method_rates():
    assert not plan(state_after(2, human_side=0)).rate_after
    assert plan(state_after(5, human_side=1)).rate_after  # turn 5 closes the native start


def test_forced_leaves_stay_forced_on_the_persons_side():
    voted = plan(state_after(6, rating(9.0, 9.0, end=True), human_side=0))
    assert voted.kind == MoveKind.FORCED_LEAVE
    left = state_after(7, rating(9.0, 9.0), human_side=0)
    left = left.with_turn(Turn(7, 1, Action(ActionType.LEAVE), Branch.NSC))
    assert plan(left).kind == MoveKind.FORCED_LEAVE


def test_inside_the_workflow_a_persons_turn_is_still_rated():
    move = plan(state_after(6, rating(7.0, 7.0), human_side=0))  # the engine would start NSI here
    assert move.kind == MoveKind.HUMAN and move.rate_after and "NSI" in move.reason


@pytest.mark.parametrize(
    ("options", "branch", "kind"),
    [
        ({"force_strategy": "NSI"}, Branch.NSI, MoveKind.ACT),
        ({"force_strategy": "SSI"}, Branch.SSI, MoveKind.ACT),
        ({"force_strategy": "NSC"}, Branch.NSC, MoveKind.ACT),
        ({"disabled_strategies": ("NSI",)}, Branch.SSI, MoveKind.ACT),
        ({"disabled_strategies": ("NSI", "SSI")}, Branch.NSC, MoveKind.ACT),
        ({"variant": Variant.NSI, "disabled_strategies": ("NSI",)}, Branch.NSC, MoveKind.ACT),
    ],
)
def test_forced_and_disabled_strategies(options, branch, kind):
    move = plan(state_after(6, rating(7.0, 7.0), **options))  # Eq. 3 alone would choose NSI
    assert (move.kind, move.branch) == (kind, branch)


def test_forcing_ssi_keeps_the_strict_termination_vote_and_forcing_nsi_ignores_it():
    assert plan(state_after(6, rating(9.0, 9.0, end=True), force_strategy="SSI")).kind == MoveKind.FORCED_LEAVE
    assert plan(state_after(6, rating(9.0, 9.0, end=True), force_strategy="NSI")).branch == Branch.NSI


def test_the_native_start_is_kept_when_a_strategy_is_forced():
    move = plan(state_after(3, force_strategy="NSI"))
    assert move.branch == Branch.NSC and "native start" in move.reason


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"force_strategy": "XYZ"}, "force_strategy must be one of"),
        ({"disabled_strategies": ("NSC",)}, "disabled_strategies may hold only"),
        ({"force_strategy": "NSI", "disabled_strategies": ("NSI",)}, "cannot be both forced and disabled"),
    ],
)
def test_invalid_experiment_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_experiment_settings_round_trip_through_json():
    config = RunConfig(force_strategy="SSI", disabled_strategies=("NSI",))
    assert RunConfig.from_json(config.to_json()) == config
