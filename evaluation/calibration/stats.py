"""How far a judge is from people, and people from each other, on one quantity (a goal score, a relevance score, a
SOTOPIA-EVAL dimension): Spearman's ρ, Kendall's τ (τ-b), the mean absolute error and the mean signed bias of the
judge against the people's mean, and Krippendorff's alpha at the interval level, between the judge and the people's
mean and among the people; each with a 95% percentile bootstrap interval over items (a fixed seed, the number of
resamples shown).

scipy (spearmanr, kendalltau, rankdata) does the rank arithmetic; Krippendorff's interval alpha is written here as
sums over units (a test checks it against the `krippendorff` package), so that the bootstrap can compute every
resample at once as a weighted sum instead of a thousand library calls per statistic. A statistic that is undefined
(fewer than two items, no spread) is None, never NaN, with a note that says why. Pure functions: no Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import kendalltau, rankdata, spearmanr

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95

Item = Hashable
People = Mapping[Hashable, float]  # annotator -> value


@dataclass(frozen=True)
class Estimate:
    """A statistic, its bootstrap interval and how many resamples defined it."""

    value: float | None
    low: float | None = None
    high: float | None = None
    resamples: int = 0  # resamples in which the statistic was defined (of the ones drawn)
    note: str = ""


@dataclass(frozen=True)
class Calibration:
    """The judge against the people on one quantity."""

    items: int  # items with a judge value and at least one person's
    people_items: int  # of them, items at least two people rated (for agreement among the people)
    people: int  # distinct people
    spearman: Estimate
    kendall: Estimate
    mae: Estimate
    bias: Estimate  # mean of judge − people's mean: above 0, the judge scores higher than people
    alpha_judge: Estimate  # Krippendorff's α (interval): the judge and the people's mean as two coders
    alpha_people: Estimate  # Krippendorff's α (interval) among the people
    resamples: int
    seed: int
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (judge, people's mean) per item, for the scatter


def _defined(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def spearman(judge: Sequence[float], people: Sequence[float]) -> float | None:
    """ρ: Pearson's correlation of the ranks (ties share their mean rank). Undefined below two items or when either
    side has no spread."""
    if len(judge) < 2 or len(set(judge)) < 2 or len(set(people)) < 2:
        return None
    return _defined(spearmanr(judge, people).statistic)


def kendall(judge: Sequence[float], people: Sequence[float]) -> float | None:
    """τ-b (ties corrected), as scipy computes it. Undefined as Spearman's ρ is."""
    if len(judge) < 2 or len(set(judge)) < 2 or len(set(people)) < 2:
        return None
    return _defined(kendalltau(judge, people).statistic)


def mae(judge: Sequence[float], people: Sequence[float]) -> float | None:
    if not judge:
        return None
    return float(np.mean(np.abs(np.asarray(judge, float) - np.asarray(people, float))))


def bias(judge: Sequence[float], people: Sequence[float]) -> float | None:
    if not judge:
        return None
    return float(np.mean(np.asarray(judge, float) - np.asarray(people, float)))


def _alpha_terms(units: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pairable unit: its count of values m, their sum, their sum of squares, and its within-unit disagreement
    Σ over ordered pairs (a − b)² / (m − 1) = 2(m·Σx² − (Σx)²) / (m − 1). α is a ratio of sums of these, so a
    resample of units is a weighted sum (how often each unit was drawn)."""
    m = np.array([len(v) for v in units], float)
    s1 = np.array([sum(v) for v in units], float)
    s2 = np.array([sum(x * x for x in v) for v in units], float)
    within = 2 * (m * s2 - s1 * s1) / (m - 1)
    return m, s1, s2, within


def _alpha_weighted(terms: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
    """α for each row of `weights` (how often each unit is in a resample): 1 − D_o / D_e with
    D_o = Σ within / n and D_e = 2(n·Σx² − (Σx)²) / (n(n − 1)), n the number of pairable values. NaN where the
    expected disagreement is zero (a single value throughout)."""
    m, s1, s2, within = terms
    n = weights @ m
    d_o = (weights @ within) / n
    d_e = 2 * (n * (weights @ s2) - (weights @ s1) ** 2) / (n * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1 - d_o / d_e
    return np.where(d_e > 1e-12, alpha, np.nan)


def interval_alpha(units: Sequence[Sequence[float]]) -> float | None:
    """Krippendorff's α at the interval level, δ² = (a − b)², over units given as the values their coders gave (a
    unit with fewer than two values pairs with nothing and is left out). Undefined without a pairable unit or
    when every value is the same (the expected disagreement is zero). The coefficient of Krippendorff (2011),
    "Computing Krippendorff's alpha-reliability", written as sums so that a bootstrap can weight the units."""
    pairable = [list(values) for values in units if len(values) >= 2]
    if not pairable:
        return None
    value = _alpha_weighted(_alpha_terms(pairable), np.ones((1, len(pairable))))[0]
    return _defined(value)


def _tau_b_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of each row pair: Σ sign(Δx)·sign(Δy) / √(Σ sign(Δx)² · Σ sign(Δy)²) over the pairs i < j
    (rows in chunks, so that the pairs of a chunk stay within a few million numbers)."""
    n = x.shape[1]
    upper = np.triu_indices(n, k=1)
    chunk = max(1, 4_000_000 // max(1, n * n))
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start : start + chunk], y[start : start + chunk]
        sx = np.sign(xs[:, :, None] - xs[:, None, :])[:, upper[0], upper[1]]
        sy = np.sign(ys[:, :, None] - ys[:, None, :])[:, upper[0], upper[1]]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + chunk] = (sx * sy).sum(axis=1) / np.sqrt((sx * sx).sum(axis=1) * (sy * sy).sum(axis=1))
    return out


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx, dy = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _pearson_rows(rankdata(x, axis=1), rankdata(y, axis=1))


def interval(values: np.ndarray) -> tuple[float | None, float | None, int]:
    """The 95% percentile interval of the defined (finite) values, and how many there were."""
    kept = values[np.isfinite(values)]
    if kept.size == 0:
        return None, None, 0
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(kept, [tail, 100 - tail])
    return float(low), float(high), int(kept.size)


def resample_indices(n: int, *, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """`resamples` rows of n item indices drawn with replacement, by numpy's generator seeded with `seed`."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _estimate(value: float | None, boot: Callable[[], np.ndarray], why: str) -> Estimate:
    if value is None:
        return Estimate(None, note=why)
    low, high, defined = interval(boot())
    return Estimate(value, low, high, defined)


def calibrate(
    judge: Mapping[Item, float], people: Mapping[Item, People], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Calibration:
    """The judge's value per item against the people's values per item (items either lacks are left out). The
    point values come from scipy (ρ, τ) and the formulas above; the bootstrap resamples items (the same resamples
    for every judge–people statistic), computed for all resamples at once."""
    keys = [key for key in judge if people.get(key)]
    j = np.array([float(judge[key]) for key in keys])
    by = [[float(v) for v in people[key].values()] for key in keys]
    mean = np.array([float(np.mean(values)) for values in by])
    everyone = {person for key in keys for person in people[key]}
    n = len(keys)
    idx = resample_indices(n, resamples=resamples, seed=seed) if n else np.zeros((0, 0), int)
    jr, mr = (j[idx], mean[idx]) if n else (None, None)
    counts = np.stack([np.bincount(row, minlength=n) for row in idx]) if n else None
    shared = [values for values in by if len(values) >= 2]
    spread = "fewer than two items, or the judge or the people gave one value throughout"
    jl, ml = j.tolist(), mean.tolist()

    def people_boot() -> np.ndarray:
        rows = resample_indices(len(shared), resamples=resamples, seed=seed)
        weights = np.stack([np.bincount(row, minlength=len(shared)) for row in rows])
        return _alpha_weighted(_alpha_terms(shared), weights)

    return Calibration(
        items=n,
        people_items=len(shared),
        people=len(everyone),
        spearman=_estimate(spearman(jl, ml), lambda: _spearman_rows(jr, mr), spread),
        kendall=_estimate(kendall(jl, ml), lambda: _tau_b_rows(jr, mr), spread),
        mae=_estimate(mae(jl, ml), lambda: np.abs(jr - mr).mean(axis=1), "no item"),
        bias=_estimate(bias(jl, ml), lambda: (jr - mr).mean(axis=1), "no item"),
        alpha_judge=_estimate(
            interval_alpha(list(zip(jl, ml, strict=True))),
            lambda: _alpha_weighted(_alpha_terms(list(zip(jl, ml, strict=True))), counts),
            "no item, or a single value throughout",
        ),
        alpha_people=_estimate(
            interval_alpha(shared), people_boot, "no item was rated by two people, or a single value throughout"
        ),
        resamples=resamples,
        seed=seed,
        pairs=list(zip(jl, ml, strict=True)),
    )
