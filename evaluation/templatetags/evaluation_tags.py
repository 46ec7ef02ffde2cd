"""Template filters of the evaluation pages: metric names, scores ×100 and intervals as tables print them."""

from __future__ import annotations

from typing import Any

from django import template

from evaluation.jobs import METRIC_LABELS
from evaluation.report import interval_text

register = template.Library()


@register.filter
def metric_label(metric: str) -> str:

    return METRIC_LABELS.get(metric, metric)


@register.filter
def score100(value: float | None) -> str:
    """A 0..1 score ×100 with one decimal, — when undefined."""
    return "—" if value is None else f"{100 * value:.1f}"


@register.filter
def number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@register.filter
def interval(value: Any) -> str:
    """mean ± 95% half width (t-interval); the mean alone when n < 2; — when nothing."""

    return interval_text(value)


@register.filter
def cell(row: Any, key: str) -> Any:
    """A key of a dict (a table row, a judge's sample); nothing when there is no such dict."""
    return row.get(key) if isinstance(row, dict) else None


@register.filter
def cell_value(score: Any, label: str) -> Any:
    """A dimension of an EpisodeScore by its table label (BEL, …, Overall)."""
    return score.value(label)
