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
    "human": "rgba(21, 128, 61, 0.14)",
}
DIFFERS = "rgba(220, 38, 38, 0.13)"
LINE = {"goal_c": "#3451b2", "goal_p": "#c2410c"}
LINE_B = {"goal_c": "#7f98f0", "goal_p": "#f59e5b"}  # the second dialogue of a comparison, lighter, dashed


def _hover_samples(rating: dict[str, Any]) -> str:
    rows = []
    for i, sample in enumerate(rating["samples"], start=1):
        scores = " ".join(str(step[2]) for step in sample["steps"])
        rows.append(f"sample {i}: {html.escape(scores)}" + (" · votes to end" if sample["votes_to_end"] else ""))
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


def _layout(figure: go.Figure, x_range: list[float], *, height: int = 280) -> None:
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
    _layout(figure, x_range)
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
    _layout(figure, x_range, height=320)
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


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")


def similarity_heatmap(turn_indices: list[int], texts: list[str], matrix: Any) -> dict[str, Any]:
    """One agent's n×n cosine-similarity matrix (paper Fig. 3 e–h): axes are its actions by turn; hovering a cell
    shows both actions' text (escaped) and their similarity."""
    labels = [f"#{i}" for i in turn_indices]
    hover = [
        [
            f"turn {turn_indices[r]}: {_short(texts[r])}<br>turn {turn_indices[c]}: {_short(texts[c])}"
            for c in range(len(texts))
        ]
        for r in range(len(texts))
    ]
    figure = go.Figure(
        go.Heatmap(
            z=[[round(float(v), 4) for v in row] for row in matrix],
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            customdata=hover,
            hovertemplate="%{customdata}<br>cosine similarity %{z:.2f}<extra></extra>",
            showscale=False,  # a colour bar needs an inline <style> (the CSP forbids it): the panel explains
            xgap=1,
            ygap=1,
        )
    )
    size = min(120 + 26 * len(texts), 520)
    figure.update_layout(
        margin={"l": 45, "r": 10, "t": 10, "b": 40},
        height=size,
        xaxis={"title": "turn", "fixedrange": True, "type": "category"},
        yaxis={"autorange": "reversed", "fixedrange": True, "type": "category", "scaleanchor": "x"},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        hoverlabel={"align": "left"},
    )
    return json.loads(figure.to_json())


def sorted_scores_chart(
    points: list[tuple[int, float, float | None]], *, metric: str, goal: str = "final goal_c"
) -> dict[str, Any]:
    """Dialogues sorted by a metric (×100) with their goal score (0–10, drawn ×10) and a cubic fit of it (paper
    Fig. 3 a–d); `goal` names it: SOTOPIA-EVAL's GOAL when judged, else the expert's final goal_c."""
    import numpy as np

    ranks = list(range(1, len(points) + 1))
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=ranks,
            y=[100 * p[1] for p in points],
            mode="markers",
            name=f"{metric} ×100",
            marker={"color": "#3451b2", "size": 6},
            customdata=[p[0] for p in points],
            hovertemplate="dialogue #%{customdata}<br>%{y:.1f}<extra></extra>",
        )
    )
    goals = [(r, p[2]) for r, p in zip(ranks, points, strict=True) if p[2] is not None]
    if goals:
        figure.add_trace(
            go.Scatter(
                x=[r for r, _ in goals],
                y=[10 * g for _, g in goals],
                mode="markers",
                name=f"{goal} ×10",
                marker={"color": "#c2410c", "size": 5, "symbol": "diamond"},
                text=[f"{g:.2f}" for _, g in goals],
                hovertemplate=f"{html.escape(goal)} %{{text}}<extra></extra>",
            )
        )
    if len(goals) >= 4:
        xs, ys = np.array([r for r, _ in goals], float), np.array([10 * g for _, g in goals], float)
        fit = np.polyval(np.polyfit(xs, ys, 3), xs)
        figure.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=fit.tolist(),
                mode="lines",
                name=f"{goal} ×10, cubic fit",
                line={"color": "#c2410c", "dash": "dot"},
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        margin={"l": 45, "r": 10, "t": 10, "b": 40},
        height=300,
        xaxis={"title": f"dialogues sorted by {metric}", "fixedrange": True},
        yaxis={"range": [-2, 102], "fixedrange": True},
        legend={"orientation": "h", "y": -0.3, "font": {"size": 11}},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
    )
    return json.loads(figure.to_json())


RELEVANCE_COLOURS = [[0, "#b91c1c"], [0.5, "#f5f5f4"], [1, "#15803d"]]  # red = poor (paper Fig. 3 e–h)


def sif_figure(diversity: Any, relevance: list[tuple[Any, Any]], texts: dict[int, str]) -> dict[str, Any]:
    """One agent's similarity heatmap (when S_div is computed) beside its per-action relevance strip (when
    judged), rows aligned by turn; hovering the strip shows the action (as evaluated: a correction applied) and the
    judge's justification, escaped."""
    by_turn = {turn.index: (turn, row) for turn, row in relevance}
    figure = json.loads(diversity.figure) if diversity.figure else None
    if figure:
        labels = list(figure["data"][0]["y"])
    else:
        labels = [f"#{turn.index}" for turn, _ in relevance]
        figure = {
            "data": [],
            "layout": {
                "margin": {"l": 45, "r": 10, "t": 10, "b": 40},
                "height": min(120 + 26 * len(labels), 520),
                "plot_bgcolor": "#ffffff",
                "paper_bgcolor": "#ffffff",
                "hoverlabel": {"align": "left"},
                "yaxis": {"autorange": "reversed", "fixedrange": True, "type": "category"},
            },
        }
    scores, hover = [], []
    for label in labels:
        turn, row = by_turn.get(int(label.lstrip("#")), (None, None))
        said = _short(texts.get(turn.pk) or turn.action_type) if turn is not None else ""
        score = row.score if row is not None else None
        scores.append([score])
        if row is None or turn is None:
            hover.append(["not judged"])
        elif score is None:
            hover.append([f"turn {turn.index}: {said}<br>failed: {_short(row.problem)}"])
        else:
            why = row.samples[0].get("justification", "") if row.samples else ""
            hover.append([f"turn {turn.index}: {said}<br>relevance {score:+.2f}<br>{_short(why, 240)}"])
    if any(s[0] is not None for s in scores) or not figure["data"]:
        strip = {
            "type": "heatmap",
            "z": scores,
            "x": ["relevance"],
            "y": labels,
            "zmin": -1,
            "zmax": 1,
            "colorscale": RELEVANCE_COLOURS,
            "showscale": False,
            "customdata": hover,
            "hovertemplate": "%{customdata}<extra></extra>",
            "xgap": 1,
            "ygap": 1,
            "xaxis": "x2" if figure["data"] else "x",
            "yaxis": "y",
        }
        if figure["data"]:
            figure["layout"]["xaxis"] = {**figure["layout"].get("xaxis", {}), "domain": [0, 0.84]}
            figure["layout"]["xaxis2"] = {"domain": [0.88, 1], "fixedrange": True, "type": "category"}
            figure["layout"]["yaxis"].pop("scaleanchor", None)
        else:
            figure["layout"]["xaxis"] = {"fixedrange": True, "type": "category"}
            figure["layout"]["width"] = 220
        figure["data"].append(strip)
    return figure
