"""Evaluation's figures, built in Python with Plotly and handed to templates as JSON (templates only embed them):
an agent's S_div similarity heatmap, dialogues sorted by a metric beside their goal score, and an agent's S-IF
figure (the heatmap beside the relevance strip). The dialogue and compare pages' figures are in
dialogues/inspection/charts.py.

Text that came from a model or an upload is escaped here before it reaches a hover label, which Plotly renders
as (a subset of) HTML.
"""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np
import plotly.graph_objects as go


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
            name="cosine similarity",
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
        # the heatmap leaves out empty actions (S_div does); the strip shows every action the judge scored, so
        # its cells are as many as the scores the panel says it averages
        judged = {turn.index for turn, row in relevance if row is not None}
        indices = {int(label.lstrip("#")) for label in figure["data"][0]["y"]} | judged
        labels = [f"#{i}" for i in sorted(indices)]
        figure["layout"]["yaxis"] = {**figure["layout"]["yaxis"], "categoryorder": "array", "categoryarray": labels}
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
            "name": "relevance",
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


def calibration_scatter(pairs: list[tuple[float, float]], *, label: str, low: float, high: float) -> dict[str, Any]:
    """A judge against the people (Calibration page): one point per item, the judge's value across, the people's
    mean up; points on the dashed identity line are items where they agree, points below it items the judge scored
    higher than people."""
    figure = go.Figure(
        [
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                name="identity (judge = people)",
                line={"dash": "dash", "color": "#888888"},
                hoverinfo="skip",
            ),
            go.Scatter(
                x=[round(j, 4) for j, _ in pairs],
                y=[round(p, 4) for _, p in pairs],
                mode="markers",
                name="items",
                marker={"size": 9, "opacity": 0.7, "color": "#1f5fa8"},
                hovertemplate=f"{html.escape(label)}: judge %{{x:.2f}}, people's mean %{{y:.2f}}<extra></extra>",
            ),
        ]
    )
    pad = (high - low) * 0.05
    figure.update_layout(
        margin={"l": 50, "r": 10, "t": 10, "b": 45},
        height=320,
        xaxis={"title": f"judge's {label}", "range": [low - pad, high + pad]},
        yaxis={"title": "people's mean", "range": [low - pad, high + pad], "scaleanchor": "x"},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        showlegend=False,
    )
    return json.loads(figure.to_json())
