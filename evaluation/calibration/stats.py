"""How far a judge is from people, and people from each other, on one quantity (a goal score, a relevance score, a
SOTOPIA-EVAL dimension): Spearman's ρ, Kendall's τ (τ-b), the mean absolute error and the mean signed bias of the
judge against the people's mean, and Krippendorff's alpha at the interval level, between the judge and the people's
mean and among the people; each with a 95% percentile bootstrap interval over items (a fixed seed, the number of
resamples shown).

scipy (spearmanr, kendalltau) and the `krippendorff` package do the arithmetic; this module chooses the conventions
and keeps them in one place. A statistic that is undefined (fewer than two items, no spread) is None, never NaN,
with a note that says why. Pure functions: no Django.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import krippendorff
import numpy as np
from scipy.stats import kendalltau, spearmanr

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


def interval_alpha(units: Sequence[Sequence[float]]) -> float | None:
    """Krippendorff's α at the interval level, δ² = (a − b)², over units given as the values their coders gave (a
    unit with fewer than two values pairs with nothing and is left out). Undefined without two pairable units or
    when every value is the same (the expected disagreement is zero)."""
    pairable = [list(values) for values in units if len(values) >= 2]
    if not pairable or len({v for values in pairable for v in values}) < 2:
        return None
    width = max(len(values) for values in pairable)
    data = np.full((width, len(pairable)), np.nan)  # coders × units; a coder slot per value, missing as NaN
    for column, values in enumerate(pairable):
        data[: len(values), column] = values
    return _defined(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))


def bootstrap(
    statistic: Callable[[Sequence[int]], float | None], n: int, *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float | None, float | None, int]:
    """The 95% percentile interval of `statistic` (a function of the indices of a resample of the n items, drawn
    with replacement), from `resamples` resamples with numpy's generator seeded by `seed`. Resamples where the
    statistic is undefined are left out and the count of the rest is returned."""
    if n == 0 or resamples == 0:
        return None, None, 0
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = statistic(rng.integers(0, n, size=n).tolist())
        if value is not None:
            values.append(value)
    if not values:
        return None, None, 0
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high), len(values)


def _estimate(
    statistic: Callable[[Sequence[int]], float | None], n: int, *, resamples: int, seed: int, why: str
) -> Estimate:
    value = statistic(list(range(n)))
    if value is None:
        return Estimate(None, note=why)
    low, high, defined = bootstrap(statistic, n, resamples=resamples, seed=seed)
    return Estimate(value, low, high, defined)


def calibrate(
    judge: Mapping[Item, float], people: Mapping[Item, People], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Calibration:
    """The judge's value per item against the people's values per item (items either lacks are left out)."""
    keys = [key for key in judge if people.get(key)]
    j = [float(judge[key]) for key in keys]
    by = [list(people[key].values()) for key in keys]
    mean = [float(np.mean(values)) for values in by]
    everyone = {person for key in keys for person in people[key]}

    def on(function: Callable[[Sequence[float], Sequence[float]], float | None]) -> Callable:
        return lambda idx: function([j[i] for i in idx], [mean[i] for i in idx])

    spread = "fewer than two items, or the judge or the people gave one value throughout"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without spread: undefined, left out
        shared = [i for i, values in enumerate(by) if len(values) >= 2]
        return Calibration(
            items=len(keys),
            people_items=len(shared),
            people=len(everyone),
            spearman=_estimate(on(spearman), len(keys), resamples=resamples, seed=seed, why=spread),
            kendall=_estimate(on(kendall), len(keys), resamples=resamples, seed=seed, why=spread),
            mae=_estimate(on(mae), len(keys), resamples=resamples, seed=seed, why="no item"),
            bias=_estimate(on(bias), len(keys), resamples=resamples, seed=seed, why="no item"),
            alpha_judge=_estimate(
                lambda idx: interval_alpha([(j[i], mean[i]) for i in idx]),
                len(keys),
                resamples=resamples,
                seed=seed,
                why="no item, or a single value throughout",
            ),
            alpha_people=_estimate(
                lambda idx: interval_alpha([by[shared[i]] for i in idx]),
                len(shared),
                resamples=resamples,
                seed=seed,
                why="no item was rated by two people, or one value",
            ),
            resamples=resamples,
            seed=seed,
            pairs=list(zip(j, mean, strict=True)),
        )
