"""Small-sample statistics for comparing self-play runs: a t confidence interval for one set of scores, and a paired
comparison of two settings over the tasks they share (paired t-test, Cohen's d_z, Wilcoxon signed-rank test with
the matched-pairs rank-biserial correlation).

scipy.stats does the work (ttest_rel, wilcoxon, rankdata, and Student's t for the interval); this module chooses the
conventions (which variant of a test, when the exact Wilcoxon distribution applies, what counts as undefined) and
keeps them in one place. Wherever a number is undefined (too few tasks, no spread, nothing left after dropping zero
differences) it is None, never NaN and never a stand-in value, and the result's `note` says why.

Nothing here touches Django or torch, so scripts and notebooks can import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, ttest_rel, wilcoxon
from scipy.stats import t as student_t

# Above this many non-zero differences the Wilcoxon test uses the normal approximation (as scipy's "auto" does).
EXACT_WILCOXON_MAX_N = 50


@dataclass(frozen=True)
class Interval:
    """`mean ± half_width` = [low, high]: a two-sided t confidence interval for the mean."""

    n: int
    mean: float | None  # None when n == 0
    half_width: float | None  # t_{(1+confidence)/2, n−1} · s / √n; None when n < 2
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Paired:
    """Two settings compared over the keys (tasks) they share; differences are a − b."""

    n: int  # shared keys
    only_a: int  # keys in a but not in b (left out)
    only_b: int  # keys in b but not in a (left out)
    mean_a: float | None  # mean of a over the shared keys
    mean_b: float | None
    mean_diff: float | None
    sd_diff: float | None  # sample standard deviation (ddof=1) of the differences
    t: float | None  # paired t statistic mean_diff / (sd_diff / √n)
    df: int | None  # n − 1
    p_t: float | None  # two-sided p of the paired t-test
    cohen_dz: float | None  # mean_diff / sd_diff
    w: float | None  # Wilcoxon statistic: min(W+, W−) over the non-zero differences
    p_w: float | None  # two-sided p of the Wilcoxon signed-rank test
    rank_biserial: float | None  # (W+ − W−) / (W+ + W−), in [−1, 1]; positive when a tends to be higher
    zeros: int  # zero differences, dropped from the Wilcoxon test (Wilcoxon's own convention)
    method_w: str | None  # "exact" or "normal"; None when the Wilcoxon test was not run
    note: str = ""


def _finite(values: Iterable[float], what: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite numbers (no NaN or infinity)")
    return array


def t_interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean ± t_{(1+confidence)/2, n−1} · s / √n, with s the sample standard deviation (ddof=1).

    The t quantile rather than 1.96 because our runs cover tens of tasks, not thousands. With one value the mean is
    reported but the interval is not (there is no spread to estimate); with none, nothing is.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be strictly between 0 and 1")
    x = _finite(values, "values")
    n = len(x)
    if n == 0:
        return Interval(0, None, None, None, None)
    mean = float(x.mean())
    if n == 1:
        return Interval(1, mean, None, None, None)
    sd = float(x.std(ddof=1))
    half_width = float(student_t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(n, mean, half_width, mean - half_width, mean + half_width)


@dataclass(frozen=True)
class _Wilcoxon:
    w: float
    p: float
    rank_biserial: float
    method: str


def _wilcoxon(nonzero: np.ndarray) -> _Wilcoxon:
    """Signed-rank test on non-zero differences (at least one), by scipy.stats.wilcoxon.

    Exact when there are at most EXACT_WILCOXON_MAX_N differences and no ties among their absolute values (the
    exact null distribution assumes distinct integer ranks). Otherwise the normal approximation to W+ with scipy's
    tie correction of the variance and a continuity correction of 0.5 towards the mean. The rank-biserial
    correlation comes from the same average ranks (scipy.stats.rankdata) split by the differences' signs.
    """
    n = len(nonzero)
    magnitudes = np.abs(nonzero)
    ranks = rankdata(magnitudes)  # ties get the average of the ranks they span
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    rank_biserial = (w_plus - w_minus) / (w_plus + w_minus)
    ties = len(np.unique(magnitudes)) < n
    method = "exact" if n <= EXACT_WILCOXON_MAX_N and not ties else "normal"
    result = wilcoxon(
        nonzero,
        zero_method="wilcox",
        correction=method == "normal",
        alternative="two-sided",
        method="exact" if method == "exact" else "asymptotic",
    )
    # Two-sided, scipy's statistic is min(W+, W−).
    return _Wilcoxon(float(result.statistic), min(1.0, float(result.pvalue)), rank_biserial, method)


def paired(a: Mapping[Hashable, float], b: Mapping[Hashable, float]) -> Paired:
    """Compare setting a with setting b over the keys they share (e.g. task id → mean score of each run).

    Differences are a − b per shared key; keys present on one side only are counted and ignored. Reports the
    paired t-test with Cohen's d_z (mean difference in units of the differences' standard deviation) and, because
    scores are bounded and often skewed, the Wilcoxon signed-rank test with the matched-pairs rank-biserial
    correlation. Zero differences are dropped from the Wilcoxon test but kept in the t-test. Equality (zero
    differences, constant differences, tied magnitudes) is exact floating-point equality, as in scipy.
    """
    shared = [key for key in a if key in b]
    only_a = len(a) - len(shared)
    only_b = len(b) - len(shared)
    x = _finite((a[key] for key in shared), "scores in a")
    y = _finite((b[key] for key in shared), "scores in b")
    d = x - y
    n = len(d)
    notes: list[str] = []

    mean_a = mean_b = mean_diff = sd_diff = t = p_t = cohen_dz = None
    df: int | None = None
    if n == 0:
        notes.append("fewer than 2 shared tasks: none shared, nothing to compare")
    else:
        mean_a, mean_b, mean_diff = float(x.mean()), float(y.mean()), float(d.mean())
    if n == 1:
        notes.append("fewer than 2 shared tasks: sd, t and d_z undefined")
        if d[0] == 0:
            notes.append("all differences are zero: Wilcoxon undefined")
    elif n >= 2:
        df = n - 1
        if np.all(d == d[0]):
            # Exactly constant differences: sd is 0, so t and d_z would be ±∞ (or 0/0 when all are zero).
            sd_diff = 0.0
            if d[0] == 0:
                notes.append("all differences are zero: t, d_z and Wilcoxon undefined")
            else:
                notes.append("differences are constant: t and d_z undefined")
        else:
            sd_diff = float(d.std(ddof=1))
            test = ttest_rel(x, y)
            t, p_t = float(test.statistic), min(1.0, float(test.pvalue))
            cohen_dz = mean_diff / sd_diff

    zeros = int(np.count_nonzero(d == 0))
    nonzero = d[d != 0]
    w = p_w = rank_biserial = None
    method_w: str | None = None
    if len(nonzero) > 0:
        result = _wilcoxon(nonzero)
        w, p_w, rank_biserial, method_w = result.w, result.p, result.rank_biserial, result.method

    return Paired(
        n=n,
        only_a=only_a,
        only_b=only_b,
        mean_a=mean_a,
        mean_b=mean_b,
        mean_diff=mean_diff,
        sd_diff=sd_diff,
        t=t,
        df=df,
        p_t=p_t,
        cohen_dz=cohen_dz,
        w=w,
        p_w=p_w,
        rank_biserial=rank_biserial,
        zeros=zeros,
        method_w=method_w,
        note="; ".join(notes),
    )
