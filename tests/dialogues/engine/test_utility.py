"""U is computed in code from the matters (paper Eq. 1), never taken from the model."""

from __future__ import annotations

import pytest

from dialogues.engine.actions import UnusableAnswer
from dialogues.engine.config import UtilityForm
from dialogues.engine.utility import parse_utility, utility_changes


def test_paper_form_computes_u():
    data = {
        "matters": [
            {"matter": "money", "value": 80, "weight": 0.5, "ratio": 0.5},
            {"matter": "friendship", "value": 60, "weight": 1.0, "ratio": 1.0},
        ],
        "utility": 999,
    }
    result = parse_utility(data)
    assert result["U"] == pytest.approx((0.5 * 0.5 * 80 + 1.0 * 1.0 * 60) / 2)
    assert result["claimed_U"] == 999  # kept for comparison, not used


def test_script_form():
    data = {
        "matters": [{"matter": "a", "value": 10, "coefficient": 0.3}, {"matter": "b", "value": 5, "coefficient": 2}]
    }
    assert parse_utility(data, UtilityForm.SCRIPT)["U"] == pytest.approx(13.0)


def test_numbers_given_as_strings_are_read():
    result = parse_utility({"matters": [{"matter": "x", "value": "50", "weight": "0.5", "ratio": "1"}]})
    assert result["U"] == 25


@pytest.mark.parametrize(
    ("matter", "message"),
    [
        pytest.param({"matter": "x", "value": 120, "weight": 0.5, "ratio": 0.5}, "outside [0, 100]", id="value"),
        pytest.param({"matter": "x", "value": 50, "weight": 1.5, "ratio": 0.5}, "outside [0, 1]", id="weight"),
        pytest.param({"matter": "x", "value": 50, "weight": 0.5, "ratio": -0.1}, "outside [0, 1]", id="ratio"),
        pytest.param({"matter": "x", "value": "a lot", "weight": 0.5, "ratio": 0.5}, "not a number", id="text"),
        pytest.param({"matter": "", "value": 1, "weight": 0.5, "ratio": 0.5}, "no description", id="nameless"),
        pytest.param({"matter": "x", "weight": 0.5, "ratio": 0.5}, "not a number", id="missing-value"),
    ],
)
def test_bad_matters_are_unusable(matter, message):
    with pytest.raises(UnusableAnswer) as unusable:
        parse_utility({"matters": [matter]})
    assert message in str(unusable.value)


def test_no_matters_is_unusable():
    with pytest.raises(UnusableAnswer):
        parse_utility({"matters": []})


def test_changes_between_utilities():
    before = parse_utility(
        {
            "matters": [
                {"matter": "a", "value": 50, "weight": 0.5, "ratio": 0.5},
                {"matter": "b", "value": 50, "weight": 0.5, "ratio": 0.5},
            ]
        }
    )
    after = parse_utility(
        {
            "matters": [
                {"matter": "a", "value": 50, "weight": 0.5, "ratio": 0.8},
                {"matter": "c", "value": 10, "weight": 0.1, "ratio": 0.1},
            ]
        }
    )
    changes = {c["matter"]: c for c in utility_changes(before, after)}
    assert changes["a"]["fields"] == {"ratio": [0.5, 0.8]}
    assert changes["b"]["change"] == "removed" and changes["c"]["change"] == "added"
