"""Inter-annotator agreement on nominal data: Cohen's kappa for two annotators, Krippendorff's alpha for any number
(missing ratings allowed). Pure functions over {item: {annotator: value}}; no database, no numpy.

Both return None where the statistic is undefined (no pairable item, or every rating the same value so that
chance agreement is total), with the counts that say why, instead of a made-up number.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from itertools import permutations

Ratings = Mapping[Hashable, Mapping[Hashable, Hashable]]  # item -> annotator -> value


@dataclass(frozen=True)
class Agreement:
    statistic: str  # "Cohen's kappa" or "Krippendorff's alpha"
    value: float | None  # None: undefined (see `note`)
    items: int  # items rated by at least two annotators (the ones that count)
    annotators: int
    observed: float | None  # share of agreeing pairs
    note: str = ""


def cohen_kappa(ratings: Ratings, first: Hashable, second: Hashable) -> Agreement:
    """κ = (p_o − p_e) / (1 − p_e) over the items both annotators rated."""
    pairs = [(by[first], by[second]) for by in ratings.values() if first in by and second in by]
    n = len(pairs)
    if n == 0:
        return Agreement("Cohen's kappa", None, 0, 2, None, "no item was rated by both")
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[v] * right[v] for v in left.keys() | right.keys()) / (n * n)
    if expected == 1:
        return Agreement("Cohen's kappa", None, n, 2, observed, "both used a single value throughout")
    return Agreement("Cohen's kappa", (observed - expected) / (1 - expected), n, 2, observed)


def krippendorff_alpha(ratings: Ratings) -> Agreement:
    """Nominal α = 1 − D_o / D_e from the coincidence matrix: each item with m ≥ 2 ratings adds every ordered pair
    of its values with weight 1 / (m − 1)."""
    coincidences: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    annotators: set[Hashable] = set()
    items = 0
    for by in ratings.values():
        annotators.update(by)
        values = list(by.values())
        if len(values) < 2:
            continue
        items += 1
        for a, b in permutations(values, 2):
            coincidences[(a, b)] += 1 / (len(values) - 1)
    if items == 0:
        return Agreement("Krippendorff's alpha", None, 0, len(annotators), None, "no item was rated twice")
    totals: dict[Hashable, float] = defaultdict(float)
    for (a, _), weight in coincidences.items():
        totals[a] += weight
    n = sum(totals.values())
    disagree = sum(w for (a, b), w in coincidences.items() if a != b)
    chance = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    observed = 1 - disagree / n
    if chance == 0:
        return Agreement("Krippendorff's alpha", None, items, len(annotators), observed, "only one value was used")
    return Agreement("Krippendorff's alpha", 1 - (n - 1) * disagree / chance, items, len(annotators), observed)


def agreement(ratings: Ratings) -> Agreement:
    """Cohen's kappa when exactly two annotators rated, Krippendorff's alpha when more did."""
    annotators = sorted({a for by in ratings.values() for a in by}, key=str)
    if len(annotators) == 2:
        return cohen_kappa(ratings, *annotators)
    return krippendorff_alpha(ratings)
