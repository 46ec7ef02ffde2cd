"""The figures of the dialogue, compare and fork-run pages (ratings per turn with the strategy bands, two
dialogues' ratings, a batch's outcome distributions), built in Python with Plotly and handed to templates as JSON
(templates only embed them).

Text that came from a model or an upload is escaped here before it reaches a hover label, which Plotly renders
as (a subset of) HTML.
"""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go

from dialogues.engine.rating import END_STEP, GOAL_C_STEPS, GOAL_P_STEPS

BRANCH_COLOURS = {
    "NSC": "rgba(120, 130, 150, 0.10)",
    "SSI": "rgba(52, 81, 178, 0.13)",
    "NSI": "rgba(122, 63, 176, 0.16)",
    "forced": "rgba(0, 0, 0, 0)",
    "human": "rgba(21, 128, 61, 0.14)",
}


DIFFERS = "rgba(220, 38, 38, 0.13)"


LINE = {"goal_c": "#3451b2", "goal_p": "#c2410c"}


LINE_B = {"goal_c": "#7f98f0", "goal_p": "#f59e5b"}  # the second dialogue of a comparison, lighter, dashed


def _hover_samples(rating: dict[str, Any]) -> str:
    """One line per judge sample, every score named: "sample 1: step1 7 · step2 7 → goal_c 7.0; …"."""
    rows = []
    for i, sample in enumerate(rating["samples"], start=1):
        scores = {name: score for name, _label, score, _analysis in sample["steps"]}

        def part(steps: tuple[str, ...], scores: dict[str, Any] = scores) -> str:
            return " · ".join(f"{s} {scores[s]}" for s in steps)

        end = f"{END_STEP} {scores[END_STEP]}: " + ("votes to end" if sample["votes_to_end"] else "go on")
        line = (
            f"sample {i}: {part(GOAL_C_STEPS)} → goal_c {sample['goal_c']:g}; "
            f"{part(GOAL_P_STEPS)} → goal_p {sample['goal_p']:g}; {end}"
        )
        rows.append(html.escape(line))
    return "<br>".join(rows)


def _rating_traces(
    figure: go.Figure, turns: list[Any], *, label: str = "", dash: str = "solid", colours: dict[str, str] = LINE
) -> None:
    """goal_c and goal_p of one dialogue, with gaps where turns are unrated, hover showing every sample."""
    for key, name in (("goal_c", "goal_c (now)"), ("goal_p", "goal_p (predicted)")):
        name = f"{label} {name}".strip()
        figure.add_trace(
            go.Scatter(
                x=[t.index for t in turns],
                y=[t.rating[key] if t.rating else None for t in turns],
                mode="lines+markers",
                connectgaps=False,
                name=name,
                line={"color": colours[key], "width": 2 if dash == "solid" else 2.5, "dash": dash},
                marker={"size": 7, "symbol": "circle" if dash == "solid" else "diamond"},
                customdata=[
                    [t.rating["valid"], t.rating["requested"], _hover_samples(t.rating)] if t.rating else [0, 0, ""]
                    for t in turns
                ],
                hovertemplate=(
                    f"turn %{{x}} · {html.escape(name)} %{{y:.2f}}<br>%{{customdata[0]}}/%{{customdata[1]}} samples "
                    "valid<br>%{customdata[2]}<extra></extra>"
                ),
            )
        )


def chart_layout(figure: go.Figure, x_range: list[float], *, height: int = 280) -> None:
    figure.update_layout(
        margin={"l": 40, "r": 10, "t": 10, "b": 35},
        height=height,
        xaxis={"title": "turn", "range": x_range, "dtick": 1, "fixedrange": True},
        yaxis={"range": [0, 10.2], "dtick": 1, "fixedrange": True},
        legend={"orientation": "h", "y": -0.25, "font": {"size": 11}},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        hoverlabel={"align": "left"},
    )


def _legend_square(figure: go.Figure, name: str, colour: str) -> None:
    marker = {"size": 12, "symbol": "square", "color": colour}
    figure.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, marker=marker))


def _band(index: int, colour: str) -> dict[str, Any]:
    return {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": index - 0.5,
        "x1": index + 0.5,
        "y0": 0,
        "y1": 1,
        "fillcolor": colour,
        "line": {"width": 0},
        "layer": "below",
    }


def rating_chart(turns: list[Any], config: Any) -> dict[str, Any]:
    """goal_c and goal_p after each rated turn, the strategy of every turn shaded behind them, and the run's
    thresholds drawn across. `turns` are inspection.TurnView objects.

    Unrated turns (native starts, the negotiation workflow) leave a gap in the lines: nothing is interpolated."""
    last = max((t.index for t in turns), default=0)
    x_range = [-0.5, max(last, 5) + 0.5]
    figure = go.Figure()
    _rating_traces(figure, turns)
    shapes = [_band(t.index, BRANCH_COLOURS.get(t.turn.branch, BRANCH_COLOURS["NSC"])) for t in turns]
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
        _legend_square(figure, f"{branch} turns", BRANCH_COLOURS[branch])
    if any(t.turn.branch == "human" for t in turns):
        _legend_square(figure, "turns played by a person", BRANCH_COLOURS["human"])
    chart_layout(figure, x_range)
    figure.update_layout(shapes=shapes)
    return json.loads(figure.to_json())


def compare_chart(a: list[Any], b: list[Any], *, fork_at: int | None, labels: tuple[str, str]) -> dict[str, Any]:
    """Two dialogues' ratings on one chart (A solid, B dashed), turns whose strategy branches differ shaded, and
    the fork point marked."""
    last = max([t.index for t in a + b] or [0])
    x_range = [-0.5, max(last, 5) + 0.5]
    figure = go.Figure()
    _rating_traces(figure, a, label=labels[0])
    _rating_traces(figure, b, label=labels[1], dash="dash", colours=LINE_B)
    branches_a, branches_b = {t.index: t.turn.branch for t in a}, {t.index: t.turn.branch for t in b}
    differs = [i for i in branches_a if i in branches_b and branches_a[i] != branches_b[i]]
    shapes = [_band(i, DIFFERS) for i in differs]
    if differs:
        _legend_square(figure, "strategy branches differ", DIFFERS)
    if fork_at is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": fork_at + 0.5,
                "x1": fork_at + 0.5,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#111827", "width": 1.5, "dash": "dot"},
            }
        )
        figure.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=f"fork after turn {fork_at}",
                line={"color": "#111827", "width": 1.5, "dash": "dot"},
            )
        )
    chart_layout(figure, x_range, height=320)
    figure.update_layout(shapes=shapes)
    return json.loads(figure.to_json())


def distribution_chart(
    arms: list[tuple[str, list[float]]], *, parent: float | None, title: str, y_range: list[float] | None = None
) -> dict[str, Any]:
    """One metric over the forks of each setting (box with every fork as a point), the parent's value across."""
    figure = go.Figure()
    colours = ["#3451b2", "#c2410c"]
    for i, (label, values) in enumerate(arms):
        figure.add_trace(
            go.Box(
                y=values,
                name=html.escape(label),
                boxpoints="all",
                jitter=0.35,
                pointpos=0,
                marker={"color": colours[i % 2], "size": 7},
                line={"color": colours[i % 2]},
                hovertemplate=f"{html.escape(label)}: %{{y:.2f}}<extra></extra>",
            )
        )
    shapes = []
    if parent is not None:
        shown = f"{parent:g}" if float(parent).is_integer() else f"{parent:.2f}"
        line = {"color": "#111827", "width": 1.5, "dash": "dot"}
        shapes.append(
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": parent, "y1": parent, "line": line}
        )
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"parent: {shown}", line=line))
    figure.update_layout(
        margin={"l": 40, "r": 10, "t": 30, "b": 30},
        height=300,
        title={"text": html.escape(title), "font": {"size": 13}, "x": 0, "xanchor": "left"},
        yaxis={"range": y_range, "fixedrange": True} if y_range else {"fixedrange": True, "rangemode": "tozero"},
        xaxis={"fixedrange": True},
        legend={"orientation": "h", "y": -0.15, "font": {"size": 11}},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        showlegend=True,
        shapes=shapes,
    )
    return json.loads(figure.to_json())
