"""Reads for the compare page: two dialogues aligned turn by turn from the turn they share (the fork point), with
both rating series on one chart. Prepared for templates, which only lay it out."""

from __future__ import annotations

import json
from dataclasses import dataclass

from dialogues.inspection.charts import compare_chart
from dialogues.inspection.selectors import TurnView, dialogue_get, turn_views
from dialogues.runs.models import Dialogue, Turn


def _same(a: Turn, b: Turn) -> bool:
    return (a.speaker, a.action_type, a.argument) == (b.speaker, b.action_type, b.argument)


def fork_point(a: Dialogue, b: Dialogue, views_a: list[TurnView], views_b: list[TurnView]) -> int | None:
    """The last turn the two share: the recorded fork turn when one is the other's fork (or both are forks of
    one parent at one turn), else the end of their identical prefix; None when they share nothing."""
    if b.parent_id == a.pk and b.fork_turn is not None:
        return b.fork_turn
    if a.parent_id == b.pk and a.fork_turn is not None:
        return a.fork_turn
    if a.parent_id and a.parent_id == b.parent_id and a.fork_turn == b.fork_turn and a.fork_turn is not None:
        return a.fork_turn
    shared = -1
    for va, vb in zip(views_a, views_b, strict=False):
        if not _same(va.turn, vb.turn):
            break
        shared = va.index
    return shared if shared >= 0 else None


@dataclass
class CompareRow:
    index: int
    a: TurnView | None
    b: TurnView | None

    @property
    def branch_differs(self) -> bool:
        return self.a is not None and self.b is not None and self.a.turn.branch != self.b.turn.branch

    @property
    def text_differs(self) -> bool:
        return self.a is None or self.b is None or not _same(self.a.turn, self.b.turn)


@dataclass
class Comparison:
    a: Dialogue
    b: Dialogue
    fork_at: int | None
    shared: list[CompareRow]  # turns 0..fork_at
    rows: list[CompareRow]  # from the turn after the fork point, aligned by turn index
    figure: str

    @property
    def branch_differences(self) -> int:
        return sum(1 for row in self.rows if row.branch_differs)


def compare(a_id: int, b_id: int) -> Comparison:
    """Two dialogues aligned turn by turn from the fork point, with both rating series on one chart."""
    a, b = dialogue_get(a_id), dialogue_get(b_id)
    views_a, views_b = turn_views(a), turn_views(b)
    at = fork_point(a, b, views_a, views_b)
    by_a, by_b = {v.index: v for v in views_a}, {v.index: v for v in views_b}
    last = max([*by_a, *by_b], default=-1)
    rows = [CompareRow(i, by_a.get(i), by_b.get(i)) for i in range(last + 1)]
    cut = -1 if at is None else at
    figure = compare_chart(views_a, views_b, fork_at=at, labels=(f"A #{a.pk}", f"B #{b.pk}"))
    return Comparison(a, b, at, rows[: cut + 1], rows[cut + 1 :], json.dumps(figure))
