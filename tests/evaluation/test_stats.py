"""evaluation.stats against arithmetic done by hand, closed forms and published examples — never against the
scipy.stats functions it calls. p-values of the t-test come from the closed form of Student's t (Abramowitz &
Stegun 26.7.3–4), those of the exact Wilcoxon test from counting subsets, those of its normal approximation from
the formula with math.erfc; the published examples are R's documented outputs for Student's sleep data and for
Hollander & Wolfe's depression data."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.stats import EXACT_WILCOXON_MAX_N, Interval, paired, t_interval

REPO = Path(__file__).resolve().parents[2]


def close(expected: float, rel: float = 1e-9) -> object:
    return pytest.approx(expected, rel=rel, abs=1e-12)


def as_tasks(a, b) -> tuple[dict[str, float], dict[str, float]]:
    keys = [f"task-{i}" for i in range(len(a))]
    return dict(zip(keys, map(float, a), strict=True)), dict(zip(keys, map(float, b), strict=True))


def t_two_sided_p(t: float, df: int) -> float:
    """1 − A(t|ν) in closed form (Abramowitz & Stegun 26.7.3 for odd ν, 26.7.4 for even ν), θ = atan(|t| / √ν)."""
    theta = math.atan(abs(t) / math.sqrt(df))
    c, s = math.cos(theta), math.sin(theta)
    if df % 2:
        total, term = 0.0, c
        if df > 1:
            total = term
            for k in range(1, (df - 3) // 2 + 1):
                term *= c * c * (2 * k) / (2 * k + 1)
                total += term
        a = 2 / math.pi * (theta + s * total)
    else:
        total = term = 1.0
        for k in range(1, (df - 2) // 2 + 1):
            term *= c * c * (2 * k - 1) / (2 * k)
            total += term
        a = s * total
    return 1 - a


def subsets_with_sum_at_most(n: int, limit: int) -> int:
    """How many subsets of the ranks 1..n sum to at most `limit`: under the null hypothesis each of the 2^n sign
    patterns is equally likely, so P(W ≤ limit) is this over 2^n. Counted by a 0/1 knapsack."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for s in range(len(counts) - 1, rank - 1, -1):
            counts[s] += counts[s - rank]
    return sum(counts[: limit + 1])


def normal_wilcoxon_p(w_plus: float, n: int, tie_groups: list[int]) -> float:
    """Normal approximation to W+: mean n(n+1)/4, variance (n(n+1)(2n+1) − Σ(t³ − t)/2) / 24, continuity 0.5."""
    mean = n * (n + 1) / 4
    se = math.sqrt((n * (n + 1) * (2 * n + 1) - sum(t**3 - t for t in tie_groups) / 2) / 24)
    z = (abs(w_plus - mean) - 0.5) / se
    return math.erfc(z / math.sqrt(2))


def test_the_oracles_by_hand():
    # 26.7.4 with ν = 2: A = t / √(t² + 2); 26.7.3 with ν = 1 (Cauchy): A = 2θ / π.
    assert t_two_sided_p(1.0, 2) == close(1 - 1 / math.sqrt(3))
    assert t_two_sided_p(1.0, 1) == close(0.5)
    # Subsets of {1..8} with sum ≤ 3: {}, {1}, {2}, {3}, {1, 2}.
    assert subsets_with_sum_at_most(8, 3) == 5 and subsets_with_sum_at_most(10, 55) == 2**10


# --- published example: Student's sleep data (R's `sleep`, paired by patient) -----------------------------------

SLEEP_DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_sleep_data_as_published_by_r():
    # R: t.test(extra ~ group, data = sleep, paired = TRUE) → t = −4.0621, df = 9, p-value = 0.002833,
    # 95 percent confidence interval −2.4598858 −0.7001142, mean difference −1.58.
    result = paired(*as_tasks(SLEEP_DRUG_1, SLEEP_DRUG_2))
    assert (result.n, result.df, result.zeros) == (10, 9, 1)
    assert result.mean_diff == pytest.approx(-1.58, abs=1e-12)
    assert result.t == pytest.approx(-4.0621, abs=5e-5)
    assert result.p_t == pytest.approx(0.002833, abs=5e-7)
    assert result.p_t == close(t_two_sided_p(result.t, 9), rel=1e-7)
    differences = [x - y for x, y in zip(SLEEP_DRUG_1, SLEEP_DRUG_2, strict=True)]
    interval = t_interval(differences)
    assert interval.low == pytest.approx(-2.4598858, abs=5e-8) and interval.high == pytest.approx(-0.7001142, abs=5e-8)
    # R: wilcox.test(extra ~ group, data = sleep, paired = TRUE) → V = 0, p-value = 0.009091 (with the warnings
    # that ties and zeros rule out the exact test). The zero (patient 5) is dropped; the nine others are all
    # negative, |d| = 1.2, 2.4, 1.3, 1.3, 1.0, 1.8, 0.8, 4.6, 1.4 with one tie (1.3 twice, ranks 4 and 5 → 4.5).
    assert (result.w, result.method_w, result.rank_biserial) == (0, "normal", -1.0)
    assert result.p_w == pytest.approx(0.009091, abs=5e-7)
    assert result.p_w == close(normal_wilcoxon_p(0, 9, [2]))


# --- t_interval ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("confidence", "quantile"), [(0.9, 2.131847), (0.95, 2.776445), (0.99, 4.604095)])
def test_t_interval_by_hand(confidence: float, quantile: float):
    # 1, 2, 3, 4, 5: mean 3; s² = (4 + 1 + 0 + 1 + 4) / 4 = 2.5; s / √n = √(2.5 / 5) = √0.5;
    # t_{(1 + confidence) / 2, 4} from the table; half width = quantile · 0.707107.
    result = t_interval([1, 2, 3, 4, 5], confidence)
    assert result.n == 5 and result.mean == 3
    assert result.half_width == pytest.approx(quantile * math.sqrt(0.5), abs=1e-6)
    assert result.low == close(3 - result.half_width) and result.high == close(3 + result.half_width)


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
def test_paired_t_by_its_formula(seed: int, n: int, shift: float):
    rng = np.random.default_rng(seed)
    b = rng.normal(6, 1.5, size=n)
    a = b + shift + rng.normal(0, 1, size=n)
    result = paired(*as_tasks(a, b))
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    assert result.t == close(t) and result.p_t == close(t_two_sided_p(t, n - 1), rel=1e-7)
    assert result.df == n - 1 and result.n == n and (result.only_a, result.only_b) == (0, 0)
    assert result.mean_diff == close(d.mean()) and result.sd_diff == close(d.std(ddof=1))
    assert result.mean_a == close(a.mean()) and result.mean_b == close(b.mean())
    assert result.cohen_dz == close(d.mean() / d.std(ddof=1))
    assert result.note == ""


# --- worked examples -------------------------------------------------------------------------------------------


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
    t = 3.75 / (s / math.sqrt(8))
    assert result.t == close(t)
    assert result.p_t == close(t_two_sided_p(t, 7), rel=1e-7)
    assert (result.w, result.method_w, result.zeros) == (3, "exact", 0)
    assert result.p_w == close(10 / 256)
    assert result.rank_biserial == close(5 / 6)
    # Swapping the runs flips the signs but not the tests.
    swapped = paired(dict(enumerate(b)), dict(enumerate(a)))
    assert swapped.t == close(-result.t) and swapped.p_t == close(result.p_t)
    assert swapped.w == 3 and swapped.p_w == close(result.p_w) and swapped.rank_biserial == close(-5 / 6)


def test_hollander_wolfe_depression_example():
    # R's ?wilcox.test: Hamilton depression scale before (x) and after (y) the first treatment of nine patients;
    # wilcox.test(x, y, paired = TRUE, alternative = "greater") → V = 40, p-value = 0.01953 (= 10 / 512).
    # d = 0.952, −0.147, 1.022, 0.43, 0.62, 0.59, 0.49, −0.08, 0.01; the negatives have ranks 2 and 3: W− = 5,
    # W+ = 45 − 5 = 40. Subsets of {1..9} summing to ≤ 5: {}, 1, 2, 3, 4, 5, 12, 13, 14, 23 → 10; two-sided 20 / 512.
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    result = paired(*as_tasks(x, y))
    assert (result.w, result.method_w, result.zeros) == (5, "exact", 0)
    assert result.p_w == close(20 / 512) and result.p_w / 2 == pytest.approx(0.01953, abs=5e-6)
    assert result.rank_biserial == close((40 - 5) / 45)


def test_wilcoxon_drops_zero_differences_the_t_test_keeps_them():
    # The textbook example plus two tasks where both runs scored the same: the Wilcoxon test is unchanged.
    a = [7, 5, 7, 8, 5, 8, 9, 9, 4, 6]
    b = [4, 6, 3, 2, 7, 3, 1, 2, 4, 6]
    result = paired(*as_tasks(a, b))
    assert (result.zeros, result.w, result.method_w) == (2, 3, "exact") and result.p_w == close(10 / 256)
    # d has two more zeros: mean 30 / 10 = 3; Σ(d − 3)² = 0 + 16 + 1 + 9 + 25 + 4 + 25 + 16 + 9 + 9 = 114.
    t = 3 / (math.sqrt(114 / 9) / math.sqrt(10))
    assert result.n == 10 and result.t == close(t) and result.p_t == close(t_two_sided_p(t, 9), rel=1e-7)


def test_rank_biserial_with_ties_by_hand():
    # d = 2, 2, −1, 3, 0: the zero is dropped; |d| = 2, 2, 1, 3 → ranks 2.5, 2.5, 1, 4.
    # W+ = 2.5 + 2.5 + 4 = 9, W− = 1; rank-biserial = (9 − 1) / 10 = 0.8, W = 1. Ties → normal approximation:
    # mean 4·5/4 = 5, variance (4·5·9 − (2³ − 2)/2) / 24 = 177 / 24, z = (9 − 5 − 0.5) / √7.375.
    result = paired({i: v for i, v in enumerate([5, 6, 3, 9, 4])}, {i: v for i, v in enumerate([3, 4, 4, 6, 4])})
    assert (result.w, result.zeros, result.method_w) == (1, 1, "normal")
    assert result.rank_biserial == close(0.8)
    assert result.p_w == close(math.erfc(3.5 / math.sqrt(177 / 24) / math.sqrt(2)))


# --- exact or normal Wilcoxon ----------------------------------------------------------------------------------


def signed(magnitudes: range, negative: set[int]) -> list[float]:
    return [-float(m) if m in negative else float(m) for m in magnitudes]


def test_wilcoxon_exact_up_to_the_limit_counted_by_hand():
    # |d| = 1..50 (no ties), ranks 1..20 negative: W− = 210, W+ = 1275 − 210 = 1065;
    # p = 2 · #{subsets of 1..50 summing to ≤ 210} / 2⁵⁰.
    n = EXACT_WILCOXON_MAX_N
    d = signed(range(1, n + 1), set(range(1, 21)))
    result = paired(*as_tasks(d, [0.0] * n))
    assert (result.method_w, result.w) == ("exact", 210)
    assert result.p_w == close(2 * subsets_with_sum_at_most(n, 210) / 2**n)
    assert result.rank_biserial == close((1065 - 210) / 1275)


@pytest.mark.parametrize("n", [EXACT_WILCOXON_MAX_N + 1, 60, 400])
def test_wilcoxon_above_the_limit_uses_the_normal_approximation(n: int):
    # |d| = 1..n, the smallest 7n/12 negative (rounded down): W− = k(k + 1)/2.
    k = 7 * n // 12
    d = signed(range(1, n + 1), set(range(1, k + 1)))
    result = paired(*as_tasks(d, [0.0] * n))
    w_minus = k * (k + 1) / 2
    w_plus = n * (n + 1) / 2 - w_minus
    assert (result.method_w, result.w) == ("normal", min(w_plus, w_minus))
    assert result.p_w == close(normal_wilcoxon_p(w_plus, n, []))


# --- edge cases ------------------------------------------------------------------------------------------------


def test_keys_on_one_side_only_are_counted_and_left_out():
    a = {"t1": 3.0, "t2": 5.0, "t3": 4.0, "t4": 9.0, "t5": 1.0}
    b = {"t3": 2.0, "t4": 6.0, "t5": 2.0, "t6": 7.0, "t7": 8.0, "t8": 0.0, "t9": 1.0}
    result = paired(a, b)
    assert (result.n, result.only_a, result.only_b) == (3, 2, 4)
    assert result.mean_a == close(14 / 3) and result.mean_b == close(10 / 3)
    # d = 2, 3, −1: mean 4/3, s² = (4 + 25 + 49) / 9 / 2 = 13/3, t = (4/3) / √(13/9) = 4 / √13;
    # with 2 degrees of freedom p = 1 − t / √(t² + 2) = 1 − 4 / √42.
    assert result.t == close(4 / math.sqrt(13)) and result.p_t == close(1 - 4 / math.sqrt(42))


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
    # The signed-rank test is defined for one non-zero difference (W+ is 0 or 1 with equal chance): W = 0, p = 1.
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
    # The Wilcoxon test is still defined: every |d| ties (ranks all 4.5, W+ = 36), so the tie-corrected normal
    # approximation: mean 18, variance (8·9·17 − (8³ − 8)/2) / 24 = 40.5, z = (36 − 18 − 0.5) / √40.5.
    assert (result.w, result.method_w, result.rank_biserial) == (0, "normal", 1.0)
    assert result.p_w == close(math.erfc(17.5 / math.sqrt(40.5) / math.sqrt(2)))


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
