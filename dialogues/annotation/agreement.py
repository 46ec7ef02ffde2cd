"""Inter-annotator agreement on nominal data: Cohen's kappa for two annotators (scikit-learn's cohen_kappa_score),
Krippendorff's alpha for any number, missing ratings allowed (the `krippendorff` package). Pure functions over
{item: {annotator: value}}; no database.

Both return None where the statistic is undefined (no pairable item, or every rating the same value so that
chance agreement is total), with the counts that say why, instead of a made-up number.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

Ratings = Mapping[Hashable, Mapping[Hashable, Hashable]]  # item -> annotator -> value


@dataclass(frozen=True)
class Agreement:
    statistic: str  # "Cohen's kappa" or "Krippendorff's alpha"
    value: float | None  # None: undefined (see `note`)
    items: int  # items rated by at least two annotators (the ones that count)
    annotators: int
    observed: float | None  # share of agreeing pairs
    note: str = ""


def _codes(values: list[Hashable]) -> dict[Hashable, int]:
    """Each distinct value as an integer, in order of first appearance: the libraries want numbers (or one sortable
    type), our labels may be any hashable values."""
    return {value: code for code, value in enumerate(dict.fromkeys(values))}


def cohen_kappa(ratings: Ratings, first: Hashable, second: Hashable) -> Agreement:
    """κ = (p_o − p_e) / (1 − p_e) over the items both annotators rated, by scikit-learn's cohen_kappa_score."""
    pairs = [(by[first], by[second]) for by in ratings.values() if first in by and second in by]
    n = len(pairs)
    if n == 0:
        return Agreement("Cohen's kappa", None, 0, 2, None, "no item was rated by both")
    observed = sum(a == b for a, b in pairs) / n
    if len({value for pair in pairs for value in pair}) == 1:
        # p_e = 1: κ is 0/0 (scikit-learn would answer NaN).
        return Agreement("Cohen's kappa", None, n, 2, observed, "both used a single value throughout")
    codes = _codes([value for pair in pairs for value in pair])
    kappa = cohen_kappa_score([codes[a] for a, _ in pairs], [codes[b] for _, b in pairs])
    return Agreement("Cohen's kappa", float(kappa), n, 2, observed)


def krippendorff_alpha(ratings: Ratings) -> Agreement:
    """Nominal α = 1 − D_o / D_e, by the `krippendorff` package from each pairable item's count of each value (an
    item rated once has nothing to pair and is left out). `observed` is the share of agreeing pairs: each item with
    m ≥ 2 ratings adds n_v(n_v − 1) / (m − 1) agreeing pairs per value v out of m."""
    annotators = {annotator for by in ratings.values() for annotator in by}
    pairable = [list(by.values()) for by in ratings.values() if len(by) >= 2]
    if not pairable:
        return Agreement("Krippendorff's alpha", None, 0, len(annotators), None, "no item was rated twice")
    codes = _codes([value for values in pairable for value in values])
    counts = np.zeros((len(pairable), len(codes)), dtype=int)  # item × value: how many annotators chose it
    for row, values in enumerate(pairable):
        for value in values:
            counts[row, codes[value]] += 1
    m = counts.sum(axis=1)
    observed = float((counts * (counts - 1)).sum(axis=1).dot(1 / (m - 1)) / m.sum())
    if len(codes) == 1:
        # Expected disagreement is zero: α is 0/0 (the package refuses a single-value domain).
        return Agreement(
            "Krippendorff's alpha", None, len(pairable), len(annotators), observed, "only one value was used"
        )
    alpha = krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")
    return Agreement("Krippendorff's alpha", float(alpha), len(pairable), len(annotators), observed)


def agreement(ratings: Ratings) -> Agreement:
    """Cohen's kappa when exactly two annotators rated, Krippendorff's alpha when more did."""
    annotators = sorted({a for by in ratings.values() for a in by}, key=str)
    if len(annotators) == 2:
        return cohen_kappa(ratings, *annotators)
    return krippendorff_alpha(ratings)
