"""The paper's reference-first partition (SOTOPIA-Ω, Appendix A.3) and the order it is applied to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.partition import (
    PAPER_HARD_REFERENCE_FIRST,
    PAPER_REFERENCE_FIRST,
    HardCheck,
    combo_order,
    hard_check,
    read_order_file,
    read_partition_file,
    reference_first,
    sides,
)

COMBOS = "sotopia_env_agent_combo_storages.jsonl"
HARD = "sotopia_hard_subset_derived.json"


def _hard_pks(sotopia_dir: Path) -> set[str]:
    """Hard tasks as the importer marks them: the combos listed in 'hard_combos'."""
    data = json.loads((sotopia_dir / HARD).read_text(encoding="utf-8"))
    return {item["combo_id"] if isinstance(item, dict) else item for item in data["hard_combos"]}


# --- the paper's lists -------------------------------------------------------------------------------------------


def test_paper_lists_have_the_counts_of_the_paper():
    # Counted from the text of Appendix A.3: 231 reference-first indices, 32 of them marked hard.
    assert len(PAPER_REFERENCE_FIRST) == 231
    assert len(PAPER_HARD_REFERENCE_FIRST) == 32


@pytest.mark.parametrize("indices", [PAPER_REFERENCE_FIRST, PAPER_HARD_REFERENCE_FIRST])
def test_paper_lists_are_sorted_unique_and_in_range(indices):
    assert list(indices) == sorted(set(indices))
    assert all(isinstance(i, int) and 0 <= i < 450 for i in indices)


def test_hard_indices_are_among_the_reference_first_ones():
    assert set(PAPER_HARD_REFERENCE_FIRST) < set(PAPER_REFERENCE_FIRST)


# --- the combo file's order (real SOTOPIA data) ------------------------------------------------------------------


def test_combo_order_has_the_450_tasks_in_file_order(sotopia_dir):
    order = combo_order(sotopia_dir / COMBOS)
    assert len(order) == 450
    assert len(set(order)) == 450
    lines = [line for line in (sotopia_dir / COMBOS).read_text(encoding="utf-8").splitlines() if line.strip()]
    assert order[0] == json.loads(lines[0])["combo_id"]
    assert order[-1] == json.loads(lines[-1])["combo_id"]


def test_reference_first_over_the_combo_order(sotopia_dir):
    order = combo_order(sotopia_dir / COMBOS)
    chosen = reference_first(order)
    assert chosen == {order[i] for i in PAPER_REFERENCE_FIRST}
    assert len(chosen) == 231
    assert {i for i, pk in enumerate(order) if pk in chosen} == set(PAPER_REFERENCE_FIRST)


def test_paper_hard_marks_mostly_do_not_fit_the_combo_order(sotopia_dir):
    order = combo_order(sotopia_dir / COMBOS)
    hard = _hard_pks(sotopia_dir)
    assert len(hard) == 70
    check = hard_check(order, hard)
    assert check.marked == 32
    assert check.hard == 5  # as the issue says: the paper's hard marks do not fit this order
    assert len(check.mismatched) == 27
    assert set(check.mismatched) < set(PAPER_HARD_REFERENCE_FIRST)
    assert all(order[i] not in hard for i in check.mismatched)
    assert not check.fits


def test_combo_order_errors_name_file_and_line(tmp_path):
    path = tmp_path / "combos.jsonl"
    good = json.dumps({"combo_id": "A", "env_id": "E", "agent_ids": ["x", "y"]})
    for bad, message in [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"env_id": "E"}), "combo_id"),
        (json.dumps({"combo_id": "  "}), "combo_id"),
        (good, "already on line 1"),
    ]:
        path.write_text(f"{good}\n\n{bad}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message) as info:
            combo_order(path)
        assert str(path) in str(info.value)
        assert "line 3" in str(info.value)


# --- order and partition files -----------------------------------------------------------------------------------


def test_order_file_as_text_with_comments_and_blank_lines(tmp_path):
    path = tmp_path / "order.txt"
    path.write_text("# the order we ran\n\nA\n  B  # trailing note\n\n# done\nC\n", encoding="utf-8")
    assert read_order_file(path) == ["A", "B", "C"]


def test_order_file_as_json_list_with_comment_lines(tmp_path):
    path = tmp_path / "order.json"
    path.write_text('# exported order\n[\n  "A",\n  "B",\n\n  "C"\n]\n', encoding="utf-8")
    assert read_order_file(path) == ["A", "B", "C"]
    other = tmp_path / "order.txt"  # a JSON list is recognised by content too
    other.write_text('["C", "B", "A"]', encoding="utf-8")
    assert read_order_file(other) == ["C", "B", "A"]


def test_order_file_duplicates_name_file_and_line(tmp_path):
    text = tmp_path / "order.txt"
    text.write_text("A\n# note\nB\nA\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 4: duplicate combo pk A \(first on line 1\)") as info:
        read_order_file(text)
    assert str(text) in str(info.value)

    as_json = tmp_path / "order.json"
    as_json.write_text('[\n  "A",\n  "B",\n  "A"\n]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 4: duplicate combo pk A \(first on line 2\)") as info:
        read_order_file(as_json)
    assert str(as_json) in str(info.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("order.txt", "A\nB C\n", r"line 2: expected one combo pk per line"),
        ("order.json", '[\n  "A",\n  3\n]', r"line 3: item 1 is not a non-empty string"),
        ("order.json", '{"order": ["A"]}', r"line 1: expected a JSON list"),
        ("order.json", '[\n  "A"\n  "B"\n]', r"line 3: invalid JSON"),
        ("order.txt", "# nothing\n\n", r"no combo pks"),
    ],
)
def test_order_file_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        read_order_file(path)
    assert str(path) in str(info.value)


def test_partition_file_in_both_formats(tmp_path):
    text = tmp_path / "partition.txt"
    text.write_text("# reference model first\nB\n\nD # hard\n", encoding="utf-8")
    assert read_partition_file(text) == {"B", "D"}
    as_json = tmp_path / "partition.json"
    as_json.write_text('["D", "B"]', encoding="utf-8")
    assert read_partition_file(as_json) == {"B", "D"}
    empty = tmp_path / "none.txt"
    empty.write_text("# the agent under test always opens\n", encoding="utf-8")
    assert read_partition_file(empty) == set()


def test_partition_file_duplicates_are_errors(tmp_path):
    path = tmp_path / "partition.txt"
    path.write_text("B\nB\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: duplicate combo pk B"):
        read_partition_file(path)


# --- mapping indices onto an order -------------------------------------------------------------------------------


def test_reference_first_and_hard_check_on_a_small_order():
    order = ["A", "B", "C", "D", "E"]
    assert reference_first(order, (1, 3)) == {"B", "D"}
    assert hard_check(order, {"B", "E"}, (1, 3)) == HardCheck(marked=2, hard=1, mismatched=[3])
    assert hard_check(order, {"B", "D"}, (1, 3)).fits


@pytest.mark.parametrize("indices", [(0, 5), (-1,)])
def test_out_of_range_indices_name_the_order_length(indices):
    order = ["A", "B", "C", "D", "E"]
    with pytest.raises(ValueError, match="order of 5 tasks"):
        reference_first(order, indices)
    with pytest.raises(ValueError, match="order of 5 tasks"):
        hard_check(order, set(), indices)


def test_paper_indices_do_not_fit_a_short_order():
    with pytest.raises(ValueError, match=r"task index 300 is out of range for an order of 300 tasks"):
        reference_first([f"T{i}" for i in range(300)])


def test_sides():
    order = ["A", "B", "C"]
    assert sides(order, {"B"}) == {"A": 0, "B": 1, "C": 0}
    assert sides(order, set()) == {"A": 0, "B": 0, "C": 0}
    assert list(sides(order, {"A", "C"})) == order
    with pytest.raises(ValueError, match="not in the order: Z"):
        sides(order, {"B", "Z"})


def test_sides_over_the_combo_order(sotopia_dir):
    order = combo_order(sotopia_dir / COMBOS)
    result = sides(order, reference_first(order))
    assert len(result) == 450
    assert sum(result.values()) == 231
    assert [i for i, pk in enumerate(order) if result[pk] == 1] == list(PAPER_REFERENCE_FIRST)
