"""A figure's CSV: the numbers a Plotly figure draws, one row per point (per cell for a heatmap), with the name of
the trace that draws it. The figures' CSV downloads are made from the very figure the page shows, so the two hold
the same numbers."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.http import HttpResponse

COLUMNS = ("trace", "x", "y", "value")


def figure_rows(figure: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for number, trace in enumerate(figure.get("data", []), start=1):
        name = trace.get("name") or f"{trace.get('type', 'trace')} {number}"
        if trace.get("type") == "heatmap":
            xs, ys = trace.get("x") or [], trace.get("y") or []
            for r, row in enumerate(trace.get("z") or []):
                for c, value in enumerate(row):
                    x = xs[c] if c < len(xs) else c
                    y = ys[r] if r < len(ys) else r
                    rows.append((name, x, y, "" if value is None else value))
            continue
        for x, y in zip(trace.get("x") or [], trace.get("y") or [], strict=False):
            if x is None and y is None:  # a legend entry, not data
                continue
            rows.append((name, "" if x is None else x, "" if y is None else y, ""))
    return rows


def figure_csv_response(figure: dict[str, Any], filename: str) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(figure_rows(figure))
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response
