"""evaluation.stats against arithmetic done by hand and against scipy.stats (ttest_rel, wilcoxon, t.interval)."""

from __future__ import annotations

import math
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from evaluation.stats import EXACT_WILCOXON_MAX_N, Interval, _signed_rank_counts, paired, t_interval

REPO = Path(__file__).resolve().parents[2]


def close(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def as_tasks(a: np.ndarray, b: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    keys = [f"task-{i}" for i in range(len(a))]
    return dict(zip(keys, map(float, a), strict=True)), dict(zip(keys, map(float, b), strict=True))


# --- t_interval ------------------------------------------------------------------------------------------------


def test_t_interval_by_hand():
    # 1, 2, 3, 4, 5: mean 3; s² = (4 + 1 + 0 + 1 + 4) / 4 = 2.5; s / √n = √(2.5 / 5) = √0.5;
    # t_{0.975, 4} = 2.776445… (table value); half width = 2.776445 · 0.707107 = 1.963243…
    result = t_interval([1, 2, 3, 4, 5])
    assert result.n == 5 and result.mean == 3
    assert result.half_width == pytest.approx(2.776445 * math.sqrt(0.5), abs=1e-6)
    assert result.half_width == close(scipy.stats.t.ppf(0.975, 4) * math.sqrt(0.5))
    assert result.low == close(3 - result.half_width) and result.high == close(3 + result.half_width)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(seed: int, confidence: float):
    values = np.random.default_rng(seed).normal(5, 2, size=7 + 10 * seed)
    low, high = scipy.stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values))
    result = t_interval(values.tolist(), confidence)
    assert result.low == close(low) and result.high == close(high)
    assert result.half_width == close((high - low) / 2) and result.mean == close(values.mean())


def test_t_interval_empty_and_single():
    assert t_interval([]) == Interval(0, None, None, None, None)
    one = t_interval([4.5])
    assert (one.n, one.mean, one.half_width, one.low, one.high) == (1, 4.5, None, None, None)


def test_t_interval_no_spread_and_bad_input():
    same = t_interval([2.0, 2.0, 2.0])
    assert (same.mean, same.half_width, same.low, same.high) == (2.0, 0.0, 2.0, 2.0)
    with pytest.raises(ValueError):
        t_interval([1.0, float("nan")])
    with pytest.raises(ValueError):
        t_interval([1.0, 2.0], confidence=1.0)


# --- paired t-test ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n", "shift"), [(0, 5, 0.0), (1, 12, 0.5), (2, 30, -0.2), (3, 100, 0.1), (4, 2, 1)])
def test_paired_t_matches_ttest_rel(seed: int, n: int, shift: float):
    rng = np.random.default_rng(seed)
    b = rng.normal(6, 1.5, size=n)
    a = b + shift + rng.normal(0, 1, size=n)
    result = paired(*as_tasks(a, b))
    expected = scipy.stats.ttest_rel(a, b)
    assert result.t == close(expected.statistic) and result.p_t == close(expected.pvalue)
    assert result.df == n - 1 and result.n == n and (result.only_a, result.only_b) == (0, 0)
    d = a - b
    assert result.mean_diff == close(d.mean()) and result.sd_diff == close(d.std(ddof=1))
    assert result.mean_a == close(a.mean()) and result.mean_b == close(b.mean())
    assert result.cohen_dz == close(d.mean() / d.std(ddof=1))
    assert result.note == ""


# --- Wilcoxon signed-rank against scipy ------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n"), [(0, 1), (1, 3), (2, 9), (3, 20), (4, 37), (5, EXACT_WILCOXON_MAX_N)])
def test_wilcoxon_exact_matches_scipy(seed: int, n: int):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 1, size=n)
    a = b + rng.normal(0.3, 1, size=n)  # continuous: no ties, no zeros
    result = paired(*as_tasks(a, b))
    expected = scipy.stats.wilcoxon(a, b, method="exact")
    assert result.method_w == "exact" and result.zeros == 0
    assert result.w == close(expected.statistic) and result.p_w == close(expected.pvalue)


@pytest.mark.parametrize(("seed", "n"), [(0, 14), (1, 30), (2, 45), (3, 120)])
def test_wilcoxon_normal_with_ties_and_zeros_matches_scipy(seed: int, n: int):
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 11, size=n).astype(float)  # SOTOPIA-style integer scores: many ties and some zeros
    a = np.clip(b + rng.integers(-3, 5, size=n), 0, 10)
    result = paired(*as_tasks(a, b))
    expected = scipy.stats.wilcoxon(a, b, zero_method="wilcox", method="asymptotic", correction=True)
    assert result.method_w == "normal" and result.zeros == int(np.sum(a == b)) > 0
    assert result.w == close(expected.statistic) and result.p_w == close(expected.pvalue)


@pytest.mark.parametrize(("seed", "n"), [(0, EXACT_WILCOXON_MAX_N + 1), (1, 80), (2, 400)])
def test_wilcoxon_large_n_uses_normal_approximation(seed: int, n: int):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 1, size=n)
    a = b + rng.normal(0.15, 1, size=n)
    result = paired(*as_tasks(a, b))
    expected = scipy.stats.wilcoxon(a, b, method="asymptotic", correction=True)
    assert result.method_w == "normal"
    assert result.w == close(expected.statistic) and result.p_w == close(expected.pvalue)


def test_wilcoxon_drops_zero_differences():
    rng = np.random.default_rng(7)
    b = rng.normal(0, 1, size=24)
    a = b + rng.normal(0.4, 1, size=24)
    a[[2, 5, 11, 19]] = b[[2, 5, 11, 19]]  # four exact zeros; the other 20 differences are distinct
    result = paired(*as_tasks(a, b))
    nonzero = (a - b)[a != b]
    assert result.zeros == 4 and result.method_w == "exact"
    for expected in (scipy.stats.wilcoxon(nonzero, method="exact"), scipy.stats.wilcoxon(a, b, method="exact")):
        assert result.w == close(expected.statistic) and result.p_w == close(expected.pvalue)
    # The t-test keeps the zeros.
    assert result.n == 24 and result.t == close(scipy.stats.ttest_rel(a, b).statistic)


def test_wilcoxon_exact_up_to_fifty_non_zero_differences_even_with_zeros():
    rng = np.random.default_rng(11)
    b = rng.normal(0, 1, size=EXACT_WILCOXON_MAX_N + 5)
    a = b + rng.normal(0.2, 1, size=len(b))
    a[:5] = b[:5]
    result = paired(*as_tasks(a, b))
    expected = scipy.stats.wilcoxon(a, b, method="exact")
    assert (result.zeros, result.method_w) == (5, "exact")
    assert result.w == close(expected.statistic) and result.p_w == close(expected.pvalue)


def test_signed_rank_null_distribution_by_enumeration():
    for n in range(0, 11):
        counts = _signed_rank_counts(n)
        brute = [0] * (n * (n + 1) // 2 + 1)
        for size in range(n + 1):
            for subset in combinations(range(1, n + 1), size):
                brute[sum(subset)] += 1
        assert list(counts) == brute and sum(counts) == 2**n and counts == counts[::-1]
    assert sum(_signed_rank_counts(EXACT_WILCOXON_MAX_N)) == 2**EXACT_WILCOXON_MAX_N


# --- a worked example -----------------------------------------------------------------------------------------


def test_textbook_example_by_hand():
    # Eight tasks, goal scores of run A and run B:
    a = [7, 5, 7, 8, 5, 8, 9, 9]
    b = [4, 6, 3, 2, 7, 3, 1, 2]
    # d = a − b = 3, −1, 4, 6, −2, 5, 8, 7. Σd = 30, mean 3.75.
    # Deviations −0.75, −4.75, 0.25, 2.25, −5.75, 1.25, 4.25, 3.25; squares sum to
    # 0.5625 + 22.5625 + 0.0625 + 5.0625 + 33.0625 + 1.5625 + 18.0625 + 10.5625 = 91.5, so s² = 91.5 / 7.
    s = math.sqrt(91.5 / 7)
    # |d| are 1..8 with no ties, so each difference's rank is its magnitude: W− = 1 + 2 = 3, W+ = 36 − 3 = 33.
    # Subsets of {1..8} with sum ≤ 3: {}, {1}, {2}, {3}, {1, 2} → 5 of 2⁸ = 256; p = 2 · 5 / 256 = 0.0390625.
    # Rank-biserial = (33 − 3) / 36 = 5/6.
    result = paired(dict(enumerate(a)), dict(enumerate(b)))
    assert (result.n, result.df, result.mean_a, result.mean_b, result.mean_diff) == (8, 7, 7.25, 3.5, 3.75)
    assert result.sd_diff == close(s)
    assert result.cohen_dz == close(3.75 / s)
    assert result.t == close(3.75 / (s / math.sqrt(8)))
    assert result.p_t == close(2 * scipy.stats.t.sf(3.75 / (s / math.sqrt(8)), 7))
    assert (result.w, result.method_w, result.zeros) == (3, "exact", 0)
    assert result.p_w == close(10 / 256)
    assert result.rank_biserial == close(5 / 6)
    # Swapping the runs flips the signs but not the tests.
    swapped = paired(dict(enumerate(b)), dict(enumerate(a)))
    assert swapped.t == close(-result.t) and swapped.p_t == close(result.p_t)
    assert swapped.w == 3 and swapped.p_w == close(result.p_w) and swapped.rank_biserial == close(-5 / 6)


def test_rank_biserial_with_ties_by_hand():
    # d = 2, 2, −1, 3, 0: the zero is dropped; |d| = 2, 2, 1, 3 → ranks 2.5, 2.5, 1, 4.
    # W+ = 2.5 + 2.5 + 4 = 9, W− = 1; rank-biserial = (9 − 1) / 10 = 0.8, W = 1. Ties → normal approximation.
    result = paired({i: v for i, v in enumerate([5, 6, 3, 9, 4])}, {i: v for i, v in enumerate([3, 4, 4, 6, 4])})
    assert (result.w, result.zeros, result.method_w) == (1, 1, "normal")
    assert result.rank_biserial == close(0.8)


# --- edge cases ------------------------------------------------------------------------------------------------


def test_keys_on_one_side_only_are_counted_and_left_out():
    a = {"t1": 3.0, "t2": 5.0, "t3": 4.0, "t4": 9.0, "t5": 1.0}
    b = {"t3": 2.0, "t4": 6.0, "t5": 2.0, "t6": 7.0, "t7": 8.0, "t8": 0.0, "t9": 1.0}
    result = paired(a, b)
    assert (result.n, result.only_a, result.only_b) == (3, 2, 4)
    assert result.mean_a == close(14 / 3) and result.mean_b == close(10 / 3)
    expected = scipy.stats.ttest_rel([4.0, 9.0, 1.0], [2.0, 6.0, 2.0])
    assert result.t == close(expected.statistic) and result.p_t == close(expected.pvalue)


def test_no_shared_keys():
    result = paired({"x": 1.0}, {"y": 2.0, "z": 3.0})
    assert (result.n, result.only_a, result.only_b, result.zeros) == (0, 1, 2, 0)
    numbers = [getattr(result, name) for name in ("mean_a", "mean_b", "mean_diff", "sd_diff", "t", "df", "p_t")]
    numbers += [result.cohen_dz, result.w, result.p_w, result.rank_biserial, result.method_w]
    assert numbers == [None] * len(numbers)
    assert "fewer than 2 shared tasks" in result.note
    assert paired({}, {}).n == 0


def test_one_shared_key():
    result = paired({"x": 4.0, "y": 1.0}, {"x": 1.0})
    assert (result.n, result.only_a, result.mean_diff, result.mean_a, result.mean_b) == (1, 1, 3.0, 4.0, 1.0)
    assert (result.sd_diff, result.t, result.df, result.p_t, result.cohen_dz) == (None, None, None, None, None)
    assert "fewer than 2 shared tasks" in result.note
    # The signed-rank test is defined for one non-zero difference (W+ is 0 or 1 with equal chance), as in scipy.
    assert (result.w, result.p_w, result.method_w, result.rank_biserial) == (0, 1.0, "exact", 1.0)


def test_all_differences_zero():
    scores = {f"t{i}": float(i % 4) for i in range(6)}
    result = paired(scores, dict(scores))
    assert (result.n, result.zeros, result.mean_diff, result.sd_diff, result.df) == (6, 6, 0.0, 0.0, 5)
    assert (result.t, result.p_t, result.cohen_dz) == (None, None, None)
    assert (result.w, result.p_w, result.rank_biserial, result.method_w) == (None, None, None, None)
    assert "all differences are zero" in result.note


def test_constant_non_zero_differences():
    b = {f"t{i}": float(i) for i in range(8)}
    a = {key: value + 2.0 for key, value in b.items()}
    result = paired(a, b)
    assert (result.mean_diff, result.sd_diff, result.t, result.p_t, result.cohen_dz) == (2.0, 0.0, None, None, None)
    assert "differences are constant" in result.note and "t and d_z undefined" in result.note
    # The Wilcoxon test is still defined: every |d| ties, so it uses the tie-corrected normal approximation.
    expected = scipy.stats.wilcoxon(list(a.values()), list(b.values()), method="asymptotic", correction=True)
    assert (result.w, result.method_w, result.rank_biserial) == (0, "normal", 1.0)
    assert result.p_w == close(expected.pvalue)


def test_non_finite_scores_are_rejected():
    with pytest.raises(ValueError):
        paired({"x": 1.0, "y": float("nan")}, {"x": 1.0, "y": 2.0})
    # A non-finite score on a key that is not shared is never used.
    assert paired({"x": 1.0, "y": float("inf")}, {"x": 2.0}).n == 1


def test_numbers_are_plain_python_types():
    result = paired({i: i * 1.5 for i in range(10)}, {i: (i % 3) * 2.0 for i in range(10)})
    for name in ("mean_a", "mean_b", "mean_diff", "sd_diff", "t", "p_t", "cohen_dz", "w", "p_w", "rank_biserial"):
        assert type(getattr(result, name)) is float, name
    assert type(result.df) is int and type(result.zeros) is int


def test_import_pulls_in_neither_torch_nor_django():
    code = "import sys, evaluation.stats; print('torch' in sys.modules, 'django' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]
