"""The calibration statistics against values computed by hand (the arithmetic is in each test's comment), not
against the libraries the code calls."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from evaluation.calibration.stats import (
    bias,
    calibrate,
    interval,
    interval_alpha,
    kendall,
    mae,
    resample_indices,
    spearman,
)


def test_rank_correlations_without_ties():
    # judge 1 2 3 4, people 1 3 2 4: d = 0, −1, 1, 0, Σd² = 2, ρ = 1 − 6·2 / (4·15) = 0.8;
    # of the 6 pairs only (2, 3) is discordant: τ = (5 − 1) / 6
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)


def test_rank_correlations_with_ties():
    # people 1 4 4 rank 1, 2.5, 2.5; judge ranks 1 2 3: deviations (−1, 0, 1) and (−1, .5, .5), covariance 1.5,
    # ρ = 1.5 / (√2 · √1.5) = 0.8660; τ-b: 2 concordant, 0 discordant, one pair tied in people only:
    # τ_b = 2 / √(3 · 2) = 0.8165
    assert spearman([2, 4, 6], [1, 4, 4]) == pytest.approx(1.5 / (2**0.5 * 1.5**0.5))
    assert kendall([2, 4, 6], [1, 4, 4]) == pytest.approx(2 / 6**0.5)


def test_errors_and_bias():
    # judge − people: 1, 0, 2 → MAE 1, bias +1 (the judge scores higher); 0, −1, 1, 0 → MAE 0.5, bias 0
    assert mae([2, 4, 6], [1, 4, 4]) == pytest.approx(1.0)
    assert bias([2, 4, 6], [1, 4, 4]) == pytest.approx(1.0)
    assert mae([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.5)
    assert bias([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.0)
    assert bias([3], [5]) == pytest.approx(-2.0)


def test_interval_alpha_two_coders():
    # units (1, 2), (3, 3), (5, 4); n = 6 values. D_o = (2 + 0 + 2) / 6 (ordered pairs' δ², m − 1 = 1);
    # mean 3, Σ(x − 3)² = 10, Σ over ordered pairs of δ² = 2 · 6 · 10 = 120, D_e = 120 / (6 · 5) = 4;
    # α = 1 − (4/6) / 4 = 5/6
    assert interval_alpha([(1, 2), (3, 3), (5, 4)]) == pytest.approx(5 / 6)


def test_interval_alpha_three_coders_and_missing():
    # units (1, 2, 3) and (2, 2), and (7,) which pairs with nothing. n = 5. D_o = (12 / 2 + 0) / 5 = 1.2;
    # values 1 2 3 2 2: Σ(x − 2)² = 2, ordered pairs 2 · 5 · 2 = 20, D_e = 20 / 20 = 1; α = 1 − 1.2 = −0.2
    assert interval_alpha([(1, 2, 3), (2, 2), (7,)]) == pytest.approx(-0.2)


@pytest.mark.parametrize(
    "judge, people",
    [
        pytest.param([5], [6], id="one-item"),
        pytest.param([5, 5, 5], [1, 2, 3], id="judge-without-spread"),
        pytest.param([1, 2, 3], [4, 4, 4], id="people-without-spread"),
    ],
)
def test_correlations_undefined_are_none(judge, people):
    assert spearman(judge, people) is None
    assert kendall(judge, people) is None


def test_alpha_undefined_without_pairs_or_spread():
    assert interval_alpha([(3,), (4,)]) is None
    assert interval_alpha([(3, 3), (3, 3)]) is None


def test_calibrate_joins_the_judge_and_the_peoples_mean():
    judge = {"a": 1.0, "b": 3.0, "c": 5.0, "unrated": 9.0}
    people = {"a": {"ann": 1, "bob": 2}, "b": {"ann": 3, "bob": 3}, "c": {"ann": 5, "bob": 4}, "no-judge": {"ann": 2}}
    result = calibrate(judge, people, resamples=200, seed=7)
    assert (result.items, result.people_items, result.people) == (3, 3, 2)
    # people's means 1.5, 3, 4.5: judge − mean = −0.5, 0, 0.5 → MAE 1/3, bias 0; ranks agree → ρ = τ = 1
    assert result.mae.value == pytest.approx(1 / 3)
    assert result.bias.value == pytest.approx(0.0)
    assert result.spearman.value == pytest.approx(1.0)
    assert result.kendall.value == pytest.approx(1.0)
    # among people: the units of test_interval_alpha_two_coders
    assert result.alpha_people.value == pytest.approx(5 / 6)
    # judge and mean as two coders: units (1, 1.5), (3, 3), (5, 4.5): D_o = (0.5 + 0 + 0.5) / 6;
    # values' mean 3, Σ(x − 3)² = 4 + 2.25 + 0 + 0 + 4 + 2.25 = 12.5, D_e = 2 · 6 · 12.5 / 30 = 5; α = 1 − (1/6)/5
    assert result.alpha_judge.value == pytest.approx(1 - (1 / 6) / 5)
    assert sorted(result.pairs) == [(1.0, 1.5), (3.0, 3.0), (5.0, 4.5)]
    assert (result.resamples, result.seed) == (200, 7)


def test_bootstrap_interval_of_a_constant_difference_is_that_difference():
    # every item's judge is its person's value + 1: every resample's bias and MAE is exactly 1
    judge = {i: float(i + 1) for i in range(8)}
    people = {i: {"ann": float(i)} for i in range(8)}
    result = calibrate(judge, people, resamples=100, seed=3)
    assert (result.bias.low, result.bias.high, result.bias.resamples) == (1.0, 1.0, 100)
    assert (result.mae.low, result.mae.high) == (1.0, 1.0)


def test_bootstrap_is_seeded_and_leaves_out_undefined_resamples():
    first = resample_indices(5, resamples=300, seed=11)
    assert (first == resample_indices(5, resamples=300, seed=11)).all()
    assert not (first == resample_indices(5, resamples=300, seed=12)).all()
    assert first.shape == (300, 5) and first.min() >= 0 and first.max() <= 4
    # the interval is the 2.5th and 97.5th percentiles of the defined values: of 0..100 with NaNs among them
    values = np.array([*range(101), np.nan, np.nan])
    low, high, defined = interval(values)
    assert (low, high, defined) == (pytest.approx(2.5), pytest.approx(97.5), 101)
    assert interval(np.array([np.nan])) == (None, None, 0)


def test_alpha_is_krippendorffs_on_random_data():
    rng = np.random.default_rng(5)
    data = rng.integers(0, 11, size=(3, 30)).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    units = [[v for v in column if not np.isnan(v)] for column in data.T]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert interval_alpha(units) == pytest.approx(expected)


def test_bootstrap_rows_match_scipy():
    from evaluation.calibration.stats import _spearman_rows, _tau_b_rows

    rng = np.random.default_rng(9)
    x = rng.integers(0, 5, size=(20, 12)).astype(float)
    y = rng.integers(0, 5, size=(20, 12)).astype(float)
    for row, rho, tau in zip(range(20), _spearman_rows(x, y), _tau_b_rows(x, y), strict=True):
        assert rho == pytest.approx(spearmanr(x[row], y[row]).statistic)
        assert tau == pytest.approx(kendalltau(x[row], y[row]).statistic)


def test_undefined_estimate_says_why():
    result = calibrate({"a": 5.0, "b": 5.0}, {"a": {"ann": 1}, "b": {"ann": 2}}, resamples=50)
    assert result.spearman.value is None and "one value" in result.spearman.note
    assert result.alpha_people.value is None and result.people_items == 0
