"""Who speaks first when an agent is evaluated against the GPT-3.5 reference model.

SOTOPIA-Ω (Appendix A.3) fixes, for the 450 SOTOPIA tasks, the 0-based indices where the reference model opens
the dialogue, and marks which of those are SOTOPIA-hard. The paper does not say which task order the indices
refer to, so this module keeps the indices, maps them onto an order (the combo file's, or one a researcher
supplies), checks how well the paper's hard marks fit that order, and accepts a partition given directly.
Task ids here are combo pks (Task.external_id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# The indices where the reference model speaks first (SOTOPIA-Ω, Appendix A.3, "GPT-3.5 as reference model").
# fmt: off
PAPER_REFERENCE_FIRST: tuple[int, ...] = (
    2, 9, 10, 12, 13, 15, 17, 18, 21, 25, 29, 30, 31, 33, 36, 38, 39, 40, 41, 42,
    44, 45, 48, 51, 53, 56, 59, 61, 62, 63, 64, 67, 68, 69, 70, 71, 72, 75, 76, 82,
    84, 87, 88, 89, 91, 92, 94, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 108, 110, 111,
    112, 113, 114, 115, 117, 118, 119, 121, 123, 124, 125, 129, 130, 132, 133, 135, 139, 140, 141, 142,
    143, 146, 148, 149, 156, 157, 159, 161, 163, 164, 169, 173, 174, 175, 177, 178, 179, 183, 186, 187,
    189, 191, 194, 195, 200, 202, 203, 204, 205, 209, 210, 211, 212, 213, 214, 215, 216, 219, 220, 223,
    224, 227, 229, 231, 232, 234, 235, 236, 237, 241, 246, 247, 250, 251, 252, 257, 259, 260, 262, 263,
    267, 269, 271, 272, 274, 275, 281, 282, 287, 289, 292, 295, 296, 298, 299, 300, 301, 302, 303, 305,
    306, 311, 313, 315, 317, 319, 321, 322, 323, 325, 326, 330, 331, 332, 333, 334, 335, 339, 340, 342,
    349, 350, 351, 355, 356, 358, 362, 363, 364, 365, 366, 367, 368, 370, 373, 374, 378, 379, 380, 382,
    387, 388, 389, 390, 394, 401, 402, 403, 404, 407, 408, 411, 413, 414, 417, 421, 422, 424, 425, 426,
    427, 429, 431, 434, 435, 438, 440, 443, 444, 445, 449,
)
# fmt: on

# Among those, the indices the paper marks as SOTOPIA-hard.
# fmt: off
PAPER_HARD_REFERENCE_FIRST: tuple[int, ...] = (
    53, 84, 99, 104, 115, 142, 156, 157, 159, 174, 187, 202, 205, 211, 232, 234, 252, 259, 262, 263,
    298, 302, 331, 340, 378, 387, 389, 414, 421, 422, 427, 444,
)
# fmt: on

AGENT_1 = 0  # the side that speaks first
AGENT_2 = 1


def combo_order(path: Path) -> list[str]:
    """The combo pks of a SOTOPIA env-agent combo file (JSONL), in file order: the first guess for the order the
    paper's indices refer to (hard_check shows how well it fits)."""
    path = Path(path)
    order: list[str] = []
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}")
            pk = row.get("combo_id")
            if not isinstance(pk, str) or not pk.strip():
                raise ValueError(f"{path}: line {number}: missing or empty 'combo_id'")
            pk = pk.strip()
            if pk in first_line:
                raise ValueError(f"{path}: line {number}: combo {pk} already on line {first_line[pk]}")
            first_line[pk] = number
            order.append(pk)
    return order


def read_order_file(path: Path) -> list[str]:
    """A task order supplied by a researcher: one combo pk per line, or a JSON list of pks. Blank lines and `#`
    comments are ignored; an empty order or a repeated pk is an error."""
    path = Path(path)
    pks = _read_pk_list(path)
    if not pks:
        raise ValueError(f"{path}: no combo pks")
    return [pk for pk, _ in pks]


def read_partition_file(path: Path) -> set[str]:
    """A partition supplied directly: the combo pks where the reference model speaks first (same formats as
    read_order_file; a repeated pk is an error, since it usually means a copying mistake)."""
    return {pk for pk, _ in _read_pk_list(Path(path))}


def reference_first(order: list[str], indices: tuple[int, ...] = PAPER_REFERENCE_FIRST) -> set[str]:
    """The combo pks at the paper's indices of `order`: the tasks where the reference model speaks first."""
    _check_indices(order, indices)
    return {order[index] for index in indices}


@dataclass
class HardCheck:
    """How the paper's hard marks fit an order: of `marked` indices, `hard` point to a hard task; `mismatched`
    lists the marked indices that do not."""

    marked: int
    hard: int
    mismatched: list[int] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.hard == self.marked


def hard_check(
    order: list[str], hard_pks: set[str], indices: tuple[int, ...] = PAPER_HARD_REFERENCE_FIRST
) -> HardCheck:
    """Whether the indices the paper marks as hard point to hard tasks under `order`, so the app can say honestly
    whether the paper's partition is likely meant for this order."""
    _check_indices(order, indices)
    mismatched = [index for index in indices if order[index] not in hard_pks]
    return HardCheck(marked=len(indices), hard=len(indices) - len(mismatched), mismatched=mismatched)


def sides(order: list[str], reference_first_pks: set[str]) -> dict[str, int]:
    """For each combo pk of `order`, the side the agent under test plays: 1 (agent 2) where the reference model
    speaks first, else 0 (agent 1, who speaks first). Pks of the partition missing from the order are an error,
    since they would otherwise be silently ignored."""
    known = set(order)
    unknown = sorted(set(reference_first_pks) - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} reference-first combo pk(s) are not in the order: {shown}")
    return {pk: AGENT_2 if pk in reference_first_pks else AGENT_1 for pk in order}


def _check_indices(order: list[str], indices: tuple[int, ...]) -> None:
    bad = [index for index in indices if not 0 <= index < len(order)]
    if bad:
        raise ValueError(
            f"task index {bad[0]} is out of range for an order of {len(order)} tasks "
            f"(valid: 0–{len(order) - 1}; {len(bad)} index(es) out of range)"
        )


def _read_pk_list(path: Path) -> list[tuple[str, int]]:
    """(pk, line) pairs from a text file (one pk per line) or a JSON list; `#` comments and blank lines ignored."""
    text = path.read_text(encoding="utf-8")
    # Whole-line comments are blanked (not removed) so that line numbers stay right in both formats.
    lines = ["" if line.lstrip().startswith("#") else line for line in text.splitlines()]
    body = "\n".join(lines)
    if body.lstrip().startswith("[") or path.suffix.lower() == ".json":
        pairs = _json_pks(path, body)
    else:
        pairs = []
        for number, line in enumerate(lines, start=1):
            content = line.split("#", 1)[0].strip()
            if not content:
                continue
            if len(content.split()) != 1:
                raise ValueError(f"{path}: line {number}: expected one combo pk per line, got {content!r}")
            pairs.append((content, number))
    first_line: dict[str, int] = {}
    for pk, number in pairs:
        if pk in first_line:
            raise ValueError(f"{path}: line {number}: duplicate combo pk {pk} (first on line {first_line[pk]})")
        first_line[pk] = number
    return pairs


def _json_pks(path: Path, body: str) -> list[tuple[str, int]]:
    try:
        items = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(items, list):
        raise ValueError(f"{path}: line 1: expected a JSON list of combo pks, got {type(items).__name__}")
    pairs: list[tuple[str, int]] = []
    cursor = body.find("[")
    for position, item in enumerate(items):
        found = body.find(json.dumps(item, ensure_ascii=False), cursor)
        cursor = found if found >= 0 else cursor
        number = body.count("\n", 0, cursor) + 1
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{path}: line {number}: item {position} is not a non-empty string: {item!r}")
        cursor += 1
        pairs.append((item.strip(), number))
    return pairs
