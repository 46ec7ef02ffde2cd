"""Run-level trajectories (METHOD.md §5): how the goal develops over the turns of a run's dialogues, how the step
ratings depend on the strategy of the rated turn, and which strategies are used at each turn.

Each function reads what is already stored (step ratings and turns of the run's finished dialogues) in one query
and returns a `TrajectoryChart`: the numbers as rows for a CSV download and a Plotly figure as a JSON-ready dict,
built the way evaluation/plots.py builds its figures (no colour bars: the CSP forbids the inline styles they need;
every text taken from the database is escaped before it reaches a hover label).

Closing ratings (taken after a dialogue ended unrated) are ratings of the last turn and are counted like the others.
"""

from __future__ import annotations

import html
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dialogues.inspection.charts import BRANCH_COLOURS, chart_layout
from dialogues.runs.models import Branch, DialogueStatus, StepRating, Turn
from evaluation.stats import t_interval


def _opaque(rgba: str) -> str:
    """'rgba(r, g, b, a)' → 'rgb(r, g, b)'."""
    return "rgb(" + ", ".join(part.strip() for part in rgba[rgba.index("(") + 1 : -1].split(",")[:3]) + ")"


# The hues of plots.BRANCH_COLOURS (turn shading), opaque: lines, markers and bars need a solid colour.
STRATEGY_COLOURS = {
    **{branch: _opaque(BRANCH_COLOURS[branch]) for branch in ("NSC", "SSI", "NSI", "human")},
    Branch.FORCED.value: "rgb(55, 65, 81)",  # transparent as shading (a forced leave is not a strategy)
    Branch.IMPORTED.value: "rgb(168, 162, 158)",
    "other": "rgb(217, 119, 6)",
}
STRATEGIES = (Branch.NSC.value, Branch.SSI.value, Branch.NSI.value)  # the method's own strategies (paper Fig. 4b)
OTHER = "other"
GROUPS = (("hard", "hard tasks"), ("ordinary", "ordinary tasks"))
GROUP_COLOURS = {"hard": "#c2410c", "ordinary": "#3451b2"}
METRICS = (("goal_c", "goal_c (now)"), ("goal_p", "goal_p (predicted)"))
HEIGHT = 300


@dataclass(frozen=True)
class TrajectoryChart:
    """One figure of a run: `rows` (dicts keyed by `columns`, in that order, for a CSV download), the Plotly
    `figure` as a JSON-ready dict, and `empty` when there was nothing to draw."""

    rows: list[dict[str, Any]]
    columns: list[str]
    figure: dict[str, Any] = field(repr=False)
    empty: bool


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float | None  # sample standard deviation (n − 1); None when n < 2
    low: float | None  # 95% t-interval; None when n < 2
    high: float | None


def summarise(values: list[float]) -> Summary:
    """Mean, sample standard deviation and the 95% t-interval mean ± t(0.975, n−1)·s/√n (none for n < 2)."""
    interval = t_interval(values)
    sd = statistics.stdev(values) if interval.n >= 2 else None
    return Summary(interval.n, interval.mean, sd, interval.low, interval.high)


def _finished(prefix: str, run_id: int, kept_only: bool) -> dict[str, Any]:
    where: dict[str, Any] = {f"{prefix}run_id": run_id, f"{prefix}status": DialogueStatus.FINISHED}
    if kept_only:
        where[f"{prefix}kept"] = True
    return where


def _ratings(run_id: int, kept_only: bool) -> list[tuple[int, int, str, bool, float, float]]:
    """(dialogue id, turn index, branch of the rated turn, task is hard, goal_c, goal_p) of every step rating of the
    run's finished dialogues: one query."""
    return list(
        StepRating.objects.filter(**_finished("dialogue__", run_id, kept_only))
        .order_by("turn__index", "dialogue_id")
        .values_list("dialogue_id", "turn__index", "turn__branch", "dialogue__task__hard", "goal_c", "goal_p")
    )


def _x_range(turns: list[int]) -> list[float]:
    return [-0.5, max(max(turns, default=0), 5) + 0.5]


def _finish(figure: go.Figure, turns: list[int], *, y_title: str, empty: bool, what: str) -> None:
    chart_layout(figure, _x_range(turns), height=HEIGHT)
    figure.update_layout(yaxis_title=y_title, showlegend=True, margin={"l": 50, "r": 10, "t": 10, "b": 35})
    if empty:
        figure.add_annotation(
            text=f"no {what} in this run's finished dialogues", xref="paper", yref="paper", x=0.5, y=0.5,
            showarrow=False,
        )  # fmt: skip


def _json(figure: go.Figure) -> dict[str, Any]:
    """Plain JSON types, as plots.py hands figures to templates."""
    return json.loads(figure.to_json())


# --- paper Fig. 1: mean goal per turn, hard and ordinary tasks ----------------------------------------------------

GOAL_BY_TURN_COLUMNS = ["turn", "group", "n", "mean", "sd", "low", "high"]


def goal_by_turn(run_id: int, *, kept_only: bool = False) -> TrajectoryChart:
    """Mean goal_c of the rating taken after each turn index, for hard and for ordinary tasks, with its count and
    95% t-interval (paper Fig. 1). Rows: one per turn and group that has ratings, by turn then group."""
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    for _dialogue, index, _branch, hard, goal_c, _goal_p in _ratings(run_id, kept_only):
        values[(index, "hard" if hard else "ordinary")].append(goal_c)
    order = {group: i for i, (group, _) in enumerate(GROUPS)}
    rows = []
    for (index, group), vals in sorted(values.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        s = summarise(vals)
        rows.append({"turn": index, "group": group, "n": s.n, "mean": s.mean, "sd": s.sd, "low": s.low, "high": s.high})

    figure = go.Figure()
    for offset, (group, label) in zip((-0.08, 0.08), GROUPS, strict=True):
        points = [r for r in rows if r["group"] == group]
        if not points:
            continue
        colour = GROUP_COLOURS[group]
        figure.add_trace(
            go.Scatter(
                x=[r["turn"] + offset for r in points],
                y=[r["mean"] for r in points],
                mode="lines+markers",
                name=label,
                legendgroup=group,
                line={"color": colour, "width": 2},
                marker={"size": 7, "color": colour},
                customdata=[
                    [r["turn"], r["n"], f"{r['low']:.2f} – {r['high']:.2f}" if r["low"] is not None else "none (n < 2)"]
                    for r in points
                ],
                hovertemplate=(
                    f"{label} · turn %{{customdata[0]}}<br>mean goal_c %{{y:.2f}} (n = %{{customdata[1]}})"
                    "<br>95% interval %{customdata[2]}<extra></extra>"
                ),
            )
        )
        # The intervals as error bars on invisible markers, only where n ≥ 2 (a null error would draw a 0-length bar).
        bars = [r for r in points if r["low"] is not None]
        if bars:
            figure.add_trace(
                go.Scatter(
                    x=[r["turn"] + offset for r in bars],
                    y=[r["mean"] for r in bars],
                    mode="markers",
                    name=f"{label}: 95% interval",
                    legendgroup=group,
                    showlegend=False,
                    hoverinfo="skip",
                    marker={"size": 1, "color": "rgba(0, 0, 0, 0)"},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [r["high"] - r["mean"] for r in bars],
                        "arrayminus": [r["mean"] - r["low"] for r in bars],
                        "color": colour,
                        "thickness": 1.5,
                        "width": 4,
                    },
                )
            )
    empty = not rows
    turns = [r["turn"] for r in rows]
    _finish(figure, turns, y_title="mean goal_c (95% interval)", empty=empty, what="step ratings")
    return TrajectoryChart(rows=rows, columns=list(GOAL_BY_TURN_COLUMNS), figure=_json(figure), empty=empty)


# --- paper Fig. 4(b): step ratings by turn and strategy ------------------------------------------------------------

RATINGS_BY_STRATEGY_COLUMNS = ["turn", "strategy", "metric", "n", "mean", "sd", "min", "max"]


def _strategy(branch: str) -> str:
    return branch if branch in STRATEGIES else OTHER


def _jitter(count: int, spread: float = 0.07) -> list[float]:
    """Fixed horizontal offsets (the same figure every time) that spread individual points apart."""
    return (np.random.default_rng(0).uniform(-spread, spread, count)).tolist() if count else []


def ratings_by_strategy(run_id: int, *, kept_only: bool = False) -> TrajectoryChart:
    """goal_c and goal_p of each step rating by the turn it followed, coloured by that turn's strategy (NSC, SSI,
    NSI; any other branch — forced, human, imported — as "other"): per strategy and turn the mean and count, with
    every rating drawn faintly behind it (paper Fig. 4b). goal_p starts hidden: its legend entries show it.
    Rows: one per turn, strategy and metric, by turn, strategy (NSC, SSI, NSI, other) and metric."""
    ratings = _ratings(run_id, kept_only)
    strategies = [*STRATEGIES, OTHER]
    values: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for _dialogue, index, branch, _hard, goal_c, goal_p in ratings:
        values[(index, _strategy(branch), "goal_c")].append(goal_c)
        values[(index, _strategy(branch), "goal_p")].append(goal_p)
    rank = {s: i for i, s in enumerate(strategies)}
    metric_rank = {m: i for i, (m, _) in enumerate(METRICS)}
    rows = []
    for (index, strategy, metric), vals in sorted(
        values.items(), key=lambda kv: (kv[0][0], rank[kv[0][1]], metric_rank[kv[0][2]])
    ):
        s = summarise(vals)
        rows.append({"turn": index, "strategy": strategy, "metric": metric, "n": s.n, "mean": s.mean, "sd": s.sd,
                     "min": min(vals), "max": max(vals)})  # fmt: skip

    figure = go.Figure()
    offsets = dict(zip(strategies, (-0.24, -0.08, 0.08, 0.24), strict=True))
    for metric, metric_label in METRICS:
        visible: bool | str = True if metric == "goal_c" else "legendonly"
        dash, symbol = ("solid", "circle") if metric == "goal_c" else ("dash", "diamond")
        for strategy in strategies:
            means = [r for r in rows if r["strategy"] == strategy and r["metric"] == metric]
            if not means:
                continue
            colour, group = STRATEGY_COLOURS[strategy], f"{strategy} {metric}"
            label = f"{strategy} · {metric_label}"
            points = [r for r in ratings if _strategy(r[2]) == strategy]
            column = 4 if metric == "goal_c" else 5
            jitter = _jitter(len(points))
            figure.add_trace(
                go.Scatter(
                    x=[p[1] + offsets[strategy] + j for p, j in zip(points, jitter, strict=True)],
                    y=[p[column] for p in points],
                    mode="markers",
                    name=f"{label}: each rating",
                    legendgroup=group,
                    showlegend=False,
                    visible=visible,
                    marker={"size": 5, "color": colour, "opacity": 0.25, "symbol": symbol},
                    customdata=[[p[1], p[0], html.escape(p[2])] for p in points],
                    hovertemplate=(
                        f"dialogue #%{{customdata[1]}} · turn %{{customdata[0]}} · %{{customdata[2]}}<br>{metric} "
                        "%{y:.2f}<extra></extra>"
                    ),
                )
            )
            figure.add_trace(
                go.Scatter(
                    x=[r["turn"] + offsets[strategy] for r in means],
                    y=[r["mean"] for r in means],
                    mode="lines+markers",
                    name=label,
                    legendgroup=group,
                    visible=visible,
                    line={"color": colour, "width": 2, "dash": dash},
                    marker={"size": 8, "color": colour, "symbol": symbol},
                    customdata=[[r["turn"], r["n"]] for r in means],
                    hovertemplate=(
                        f"{strategy} turns · turn %{{customdata[0]}}<br>mean {metric} %{{y:.2f}} "
                        "(n = %{customdata[1]})<extra></extra>"
                    ),
                )
            )
    empty = not rows
    turns = [r["turn"] for r in rows]
    _finish(figure, turns, y_title="step rating (mean, each)", empty=empty, what="step ratings")
    return TrajectoryChart(rows=rows, columns=list(RATINGS_BY_STRATEGY_COLUMNS), figure=_json(figure), empty=empty)


# --- strategy use over turns ---------------------------------------------------------------------------------------

STRATEGY_USE_COLUMNS = ["turn", "strategy", "count", "total", "share"]
BRANCHES = [b.value for b in Branch]  # NSC, SSI, NSI, forced, human, import


def strategy_use(run_id: int, *, kept_only: bool = False) -> TrajectoryChart:
    """For each turn index, the share and count of the run's turns played with each branch (NSC, SSI, NSI, forced,
    human, import; an unknown value as "other"), as stacked bars. Rows: every turn × every branch used anywhere
    in the run (count 0 included), so that the shares of a turn sum to 1."""
    turns = Turn.objects.filter(**_finished("dialogue__", run_id, kept_only)).values_list("index", "branch")
    counts: dict[tuple[int, str], int] = defaultdict(int)
    totals: dict[int, int] = defaultdict(int)
    for index, branch in turns:
        counts[(index, branch if branch in BRANCHES else OTHER)] += 1
        totals[index] += 1
    used = [b for b in [*BRANCHES, OTHER] if any(k[1] == b for k in counts)]
    indices = sorted(totals)
    rows = [
        {"turn": i, "strategy": b, "count": counts[(i, b)], "total": totals[i], "share": counts[(i, b)] / totals[i]}
        for i in indices
        for b in used
    ]
    figure = go.Figure()
    for branch in used:
        mine = [r for r in rows if r["strategy"] == branch]
        label = Branch(branch).label if branch in BRANCHES else "other (unknown branch)"
        figure.add_trace(
            go.Bar(
                x=[r["turn"] for r in mine],
                y=[r["share"] for r in mine],
                name=branch,
                marker={"color": STRATEGY_COLOURS[branch], "line": {"width": 0}},
                customdata=[[r["count"], r["total"]] for r in mine],
                hovertemplate=(
                    f"turn %{{x}} · {html.escape(branch)} ({html.escape(label)})<br>%{{customdata[0]}} of "
                    "%{customdata[1]} turns (%{y:.0%})<extra></extra>"
                ),
            )
        )
    empty = not rows
    _finish(figure, indices, y_title="share of turns", empty=empty, what="turns")
    figure.update_layout(barmode="stack", bargap=0.15, yaxis={"range": [0, 1], "dtick": 0.25, "tickformat": ".0%"})
    return TrajectoryChart(rows=rows, columns=list(STRATEGY_USE_COLUMNS), figure=_json(figure), empty=empty)
