"""Strategy selection (Eq. 3) with its exact boundaries, the filter (Eq. 4) and keep-best."""

from __future__ import annotations

import pytest

from dialogues.engine.config import FilterRule, RunConfig, SsiRule, Variant
from dialogues.engine.strategy import (
    AttemptOutcome,
    Branch,
    choose_kept,
    fails_only_for_ending,
    passes_filter,
    select_strategy,
)

PAPER = RunConfig()
SCRIPT = RunConfig(ssi_rule=SsiRule.SCRIPT)


@pytest.mark.parametrize(
    ("goal_c", "goal_p", "expected"),
    [
        pytest.param(7.0, 7.17, Branch.NSI, id="worked-case"),
        pytest.param(7.5, 8.49, Branch.NSI, id="c=7.5-is-still-low"),
        pytest.param(7.5, 8.5, Branch.SSI, id="c=7.5-p=8.5-ssi-by-first-clause"),
        pytest.param(3.0, 9.0, Branch.SSI, id="low-now-high-later"),
        pytest.param(7.51, 8.0, Branch.SSI, id="just-above-7.5"),
        pytest.param(8.49, 8.49, Branch.SSI, id="mid-band"),
        pytest.param(8.5, 8.0, Branch.NSC, id="c=8.5-leaves-the-band"),
        pytest.param(8.0, 8.5, Branch.NSC, id="mid-c-but-p=8.5"),
        pytest.param(9.0, 9.5, Branch.NSC, id="doing-well"),
        pytest.param(7.51, 8.5, Branch.NSC, id="mid-c-high-p"),
        pytest.param(0.0, 0.0, Branch.NSI, id="floor"),
    ],
)
def test_paper_eq3(goal_c, goal_p, expected):
    assert select_strategy(goal_c, goal_p, PAPER).branch == expected


@pytest.mark.parametrize(
    ("goal_c", "goal_p", "expected"),
    [
        pytest.param(7.5, 8.5, Branch.NSC, id="script-needs-p-above-8.5"),
        pytest.param(7.5, 8.51, Branch.SSI, id="script-above"),
        pytest.param(7.5, 8.49, Branch.NSI, id="script-nsi-same"),
    ],
)
def test_script_rule(goal_c, goal_p, expected):
    assert select_strategy(goal_c, goal_p, SCRIPT).branch == expected


def test_thresholds_are_parameters():
    config = RunConfig(nsi_goal_c_max=6.0, goal_p_high=9.0, ssi_goal_c_max=9.0)
    assert select_strategy(7.0, 8.0, config).branch == Branch.SSI
    assert select_strategy(6.0, 8.9, config).branch == Branch.NSI


def test_reason_says_why():
    reason = select_strategy(7.0, 7.17, PAPER).reason
    assert "goal_c 7.00" in reason and "≤ 7.5" in reason and "< 8.5" in reason and "NSI" in reason


def outcome(index, c, p=8.0, nsi=False, left=True):
    return AttemptOutcome(index=index, final_goal_c=c, final_goal_p=p, nsi_used=nsi, both_left=left)


@pytest.mark.parametrize(
    ("attempt", "config", "passes"),
    [
        pytest.param(outcome(0, 8.0, nsi=True), PAPER, True, id="8.0-with-nsi-passes"),
        pytest.param(outcome(0, 7.99, nsi=True), PAPER, False, id="below-8.0-with-nsi"),
        pytest.param(outcome(0, 8.49), PAPER, False, id="8.49-without-nsi"),
        pytest.param(outcome(0, 8.5), PAPER, True, id="8.5-without-nsi"),
        pytest.param(outcome(0, 9.0, left=False), PAPER, False, id="did-not-both-leave"),
        pytest.param(
            outcome(0, 8.2, nsi=True), RunConfig(filter_rule=FilterRule.SCRIPT), False, id="script-swaps-8.5-with-nsi"
        ),
        pytest.param(outcome(0, 8.2), RunConfig(filter_rule=FilterRule.SCRIPT), True, id="script-8.0-without"),
    ],
)
def test_filter_eq4(attempt, config, passes):
    assert passes_filter(attempt, config) is passes


@pytest.mark.parametrize(
    ("attempt", "config", "only"),
    [
        pytest.param(outcome(0, 9.0, nsi=True, left=False), PAPER, True, id="goal-enough-but-not-both-left"),
        pytest.param(outcome(0, 8.0, nsi=True, left=False), PAPER, True, id="exactly-the-nsi-threshold"),
        pytest.param(outcome(0, 8.2, left=False), PAPER, False, id="below-8.5-without-nsi-fails-anyway"),
        pytest.param(outcome(0, 7.9, nsi=True, left=False), PAPER, False, id="below-8.0-fails-anyway"),
        pytest.param(outcome(0, 9.0, nsi=True), PAPER, False, id="both-left-passes"),
        pytest.param(outcome(0, None, left=False), PAPER, False, id="no-final-rating"),
        pytest.param(
            outcome(0, 9.0, left=False), RunConfig(variant=Variant.PLAIN, attempts=1), False, id="episodes-unfiltered"
        ),
    ],
)
def test_failing_only_for_the_ending(attempt, config, only):
    assert fails_only_for_ending(attempt, config) is only
    if only:
        assert not passes_filter(attempt, config)


@pytest.mark.parametrize(
    ("outcomes", "kept"),
    [
        pytest.param([outcome(0, 7.0), outcome(1, 8.6)], 1, id="first-that-passes"),
        pytest.param([outcome(0, 8.6), outcome(1, 9.0)], 0, id="earliest-passing-even-if-later-better"),
        pytest.param([outcome(0, 7.0), outcome(1, 8.2), outcome(2, 7.5), outcome(3, 8.1)], 1, id="best-goal-c"),
        pytest.param([outcome(0, 8.2, 7.0), outcome(1, 8.2, 7.5), outcome(2, 8.2, 7.2)], 1, id="tie-goal-p"),
        pytest.param([outcome(0, 8.2, 7.5), outcome(1, 8.2, 7.5), outcome(2, 8.0, 9.0)], 0, id="tie-earliest"),
        pytest.param([outcome(0, None)], None, id="nothing-finished"),
    ],
)
def test_keep_best(outcomes, kept):
    assert choose_kept(outcomes, PAPER) == kept


def test_script_keeps_no_best():
    assert choose_kept([outcome(0, 7.0), outcome(1, 8.2)], RunConfig(keep_best=False)) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"judge_samples": 0}, "judge_samples must be at least 1", id="no-samples"),
        pytest.param({"judge_samples": 3, "judge_min_valid": 4}, "judge_min_valid must be between", id="min-valid"),
        pytest.param({"attempts": 0}, "attempts must be at least 1", id="attempts"),
        pytest.param({"nsi_goal_c_max": 11}, "nsi_goal_c_max must be between 0 and 10", id="threshold"),
        pytest.param({"unusable_retries": -1}, "cannot be negative", id="retries"),
    ],
)
def test_invalid_configurations_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_config_round_trips_through_json():
    config = RunConfig(judge_samples=3, ssi_rule=SsiRule.SCRIPT, filter_rule=FilterRule.SCRIPT, attempts=2)
    assert RunConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown run parameters"):
        RunConfig.from_json({**config.to_json(), "temperature_typo": 1})
