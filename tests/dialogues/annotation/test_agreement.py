"""Agreement statistics against values computed by hand and published examples."""

from __future__ import annotations

import pytest

from dialogues.annotation.agreement import agreement, cohen_kappa, krippendorff_alpha


def from_counts(counts: dict[tuple[str, str], int]) -> dict[int, dict[str, str]]:
    ratings, item = {}, 0
    for (a, b), n in counts.items():
        for _ in range(n):
            ratings[item] = {"ann": a, "bob": b}
            item += 1
    return ratings


def test_cohens_kappa_by_hand():
    # 50 items: both yes 20, yes/no 5, no/yes 10, both no 15. p_o = 35/50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5;
    # κ = (0.7 − 0.5) / (1 − 0.5) = 0.4
    ratings = from_counts({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    result = cohen_kappa(ratings, "ann", "bob")
    assert result.value == pytest.approx(0.4) and result.items == 50 and result.observed == pytest.approx(0.7)
    assert agreement(ratings).statistic == "Cohen's kappa"


def test_cohens_kappa_three_categories_by_hand():
    # 7 dialogues, decisions accept / reject / review; 5 agree.
    # ann: accept 3, reject 3, review 1; bob: accept 3, reject 2, review 2.
    # p_o = 5/7; p_e = (3·3 + 3·2 + 1·2) / 49 = 17/49; κ = (5/7 − 17/49) / (1 − 17/49) = (35 − 17) / (49 − 17)
    pairs = [
        ("accept", "accept"), ("accept", "accept"), ("reject", "reject"), ("review", "review"),
        ("reject", "reject"), ("accept", "review"), ("reject", "accept"),
    ]  # fmt: skip
    ratings = {i: {"ann": a, "bob": b} for i, (a, b) in enumerate(pairs)}
    result = cohen_kappa(ratings, "ann", "bob")
    assert result.value == pytest.approx(18 / 32) and result.observed == pytest.approx(5 / 7)


def test_krippendorffs_published_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, nominal α = 0.743
    rows = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    ratings = {u: {o: v[u] for o, v in rows.items() if v[u] is not None} for u in range(12)}
    result = krippendorff_alpha(ratings)
    assert result.value == pytest.approx(0.743, abs=5e-4)
    assert result.items == 11 and result.annotators == 4  # unit 12 has one value: not pairable
    assert agreement(ratings).statistic == "Krippendorff's alpha"


def test_perfect_and_undefined():
    same = {1: {"a": "x", "b": "x"}, 2: {"a": "y", "b": "y"}}
    assert cohen_kappa(same, "a", "b").value == pytest.approx(1.0)
    assert krippendorff_alpha({**same, 3: {"a": "x", "b": "x", "c": "x"}}).value == pytest.approx(1.0)
    constant = {1: {"a": "x", "b": "x"}, 2: {"a": "x", "b": "x"}}
    assert cohen_kappa(constant, "a", "b").value is None
    assert "single value" in cohen_kappa(constant, "a", "b").note
    assert krippendorff_alpha(constant).value is None
    assert cohen_kappa({1: {"a": "x"}}, "a", "b").items == 0
    assert krippendorff_alpha({1: {"a": "x"}}).value is None


def test_values_of_mixed_types_and_a_value_only_on_an_unpairable_item():
    # Labels need not be of one sortable type: (1, 1), ("a", "a"), (1, "a"), ("a", "a").
    # p_o = 3/4; ann: 1 twice, "a" twice; bob: 1 once, "a" three times; p_e = (2·1 + 2·3) / 16 = 1/2; κ = 1/2.
    pairs = [(1, 1), ("a", "a"), (1, "a"), ("a", "a")]
    ratings = {i: {"ann": a, "bob": b} for i, (a, b) in enumerate(pairs)}
    assert cohen_kappa(ratings, "ann", "bob").value == pytest.approx(0.5)
    # Three annotators, mixed types: items (1, 1, "a") and ("a", "a"); coincidences 1–1: 1, a–a: 2, 1–a: 1, a–1: 1
    # (each pair of the first item weighs 1/2). n = 5, n_1 = 2, n_a = 3; α = 1 − (n − 1)·2 / (2·2·3) = 1/3.
    three = {1: {"x": 1, "y": 1, "z": "a"}, 2: {"x": "a", "y": "a"}}
    result = krippendorff_alpha(three)
    assert result.value == pytest.approx(1 / 3) and result.observed == pytest.approx(3 / 5)
    # A value seen only on an item rated once does not count: only "x" is pairable, so α is undefined.
    lone = krippendorff_alpha({1: {"a": "x", "b": "x"}, 2: {"a": "x", "b": "x"}, 3: {"c": "y"}})
    assert lone.value is None and "only one value" in lone.note and lone.observed == pytest.approx(1.0)
