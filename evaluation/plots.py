"""Figures, built in Python with Plotly and handed to templates as JSON (templates only embed them).

Text that came from a model or an upload is escaped here before it reaches a hover label, which Plotly renders
as (a subset of) HTML.
"""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go

BRANCH_COLOURS = {
    "NSC": "rgba(120, 130, 150, 0.10)",
    "SSI": "rgba(52, 81, 178, 0.13)",
    "NSI": "rgba(122, 63, 176, 0.16)",
    "forced": "rgba(0, 0, 0, 0)",
}
LINE = {"goal_c": "#3451b2", "goal_p": "#c2410c"}


def _hover_samples(rating: dict[str, Any]) -> str:
    rows = []
    for i, sample in enumerate(rating["samples"], start=1):
        scores = " ".join(str(step[2]) for step in sample["steps"])
        rows.append(f"sample {i}: {html.escape(scores)}" + (" · votes to end" if sample["votes_to_end"] else ""))
    return "<br>".join(rows)


def rating_chart(turns: list[Any], config: Any) -> dict[str, Any]:
    """goal_c and goal_p after each rated turn, the strategy of every turn shaded behind them, and the run's
    thresholds drawn across. `turns` are inspection.TurnView objects.

    Unrated turns (native starts, the negotiation workflow) leave a gap in the lines: nothing is interpolated."""
    last = max((t.index for t in turns), default=0)
    x_range = [-0.5, max(last, 5) + 0.5]
    figure = go.Figure()
    for key, name in (("goal_c", "goal_c (now)"), ("goal_p", "goal_p (predicted)")):
        figure.add_trace(
            go.Scatter(
                x=[t.index for t in turns],
                y=[t.rating[key] if t.rating else None for t in turns],
                mode="lines+markers",
                connectgaps=False,
                name=name,
                line={"color": LINE[key], "width": 2},
                marker={"size": 7},
                customdata=[
                    [t.rating["valid"], t.rating["requested"], _hover_samples(t.rating)] if t.rating else [0, 0, ""]
                    for t in turns
                ],
                hovertemplate=(
                    f"turn %{{x}} · {name} %{{y:.2f}}<br>%{{customdata[0]}}/%{{customdata[1]}} samples "
                    "valid<br>%{customdata[2]}<extra></extra>"
                ),
            )
        )
    shapes = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": turn.index - 0.5,
            "x1": turn.index + 0.5,
            "y0": 0,
            "y1": 1,
            "fillcolor": BRANCH_COLOURS.get(turn.turn.branch, BRANCH_COLOURS["NSC"]),
            "line": {"width": 0},
            "layer": "below",
        }
        for turn in turns
    ]
    thresholds = [
        (config.nsi_goal_c_max, f"NSI if goal_c ≤ {config.nsi_goal_c_max:g}", "#7a3fb0"),
        (config.goal_p_high, f"goal_p threshold {config.goal_p_high:g}", "#c2410c"),
        (config.filter_with_nsi, f"filter with NSI {config.filter_with_nsi:g}", "#1f7a4d"),
    ]
    if config.filter_without_nsi != config.goal_p_high:
        thresholds.append((config.filter_without_nsi, f"filter {config.filter_without_nsi:g}", "#1f7a4d"))
    for value, label, colour in thresholds:  # legend entries, not labels on the plot: close values never overlap
        figure.add_trace(
            go.Scatter(
                x=x_range,
                y=[value, value],
                mode="lines",
                name=label,
                line={"color": colour, "width": 1, "dash": "dot"},
                hovertemplate=f"{label}<extra></extra>",
            )
        )
    for branch in ("NSC", "SSI", "NSI"):  # a legend for the shading
        figure.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"{branch} turns",
                marker={"size": 12, "symbol": "square", "color": BRANCH_COLOURS[branch]},
            )
        )
    figure.update_layout(
        shapes=shapes,
        margin={"l": 40, "r": 10, "t": 10, "b": 35},
        height=280,
        xaxis={"title": "turn", "range": x_range, "dtick": 1, "fixedrange": True},
        yaxis={"range": [0, 10.2], "dtick": 1, "fixedrange": True},
        legend={"orientation": "h", "y": -0.25, "font": {"size": 11}},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        hoverlabel={"align": "left"},
    )
    return json.loads(figure.to_json())
