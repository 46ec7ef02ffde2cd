"""Run trajectories (paper Fig. 1, Fig. 4b, strategy use) on a small run built by hand: means, counts, t-intervals
and shares against hand computations; only finished dialogues, kept_only, one query each, figures as plain JSON
with escaped hovers and no colour bars."""

from __future__ import annotations

import json
import math

import pytest

from dialogues.runs.models import Dialogue, DialogueStatus
from evaluation.trajectories import goal_by_turn, ratings_by_strategy, strategy_use, summarise
from tests.factories import DialogueFactory, RunFactory, TaskFactory

pytestmark = pytest.mark.django_db

T2 = 4.302652729911275  # t(0.975, 2), from a table
T1 = 12.706204736174698  # t(0.975, 1)


def turns(branches: list[str], ratings: dict[int, tuple[float, float]]) -> list[dict]:
    """`branches`: the branch of turns 0, 1, …; `ratings`: {turn index: (goal_c, goal_p)}."""
    return [{"branch": b, "argument": "<b>hi</b>", "rating": ratings.get(i)} for i, b in enumerate(branches)]


@pytest.fixture
def run():
    hard, ordinary = TaskFactory(key="hard", hard=True), TaskFactory(key="ordinary", hard=False)
    run = RunFactory(name="r")
    nsc6 = ["NSC"] * 6
    DialogueFactory(run=run, task=hard, attempt=0, kept=True, turns=turns([*nsc6, "SSI"], {5: (6, 8), 6: (7, 9)}))
    DialogueFactory(run=run, task=hard, attempt=1, turns=turns([*nsc6, "NSI"], {5: (4, 7), 6: (8, 8.5)}))
    DialogueFactory(run=run, task=hard, attempt=2, kept=True, turns=turns(nsc6, {5: (5, 6)}))
    DialogueFactory(run=run, task=ordinary, attempt=0, kept=True,
                    turns=turns([*nsc6, "SSI", "forced"], {5: (9, 9.5), 6: (5, 6), 7: (3, 3)}))  # fmt: skip
    DialogueFactory(
        run=run, task=ordinary, attempt=1, turns=turns([*nsc6, "<i>"], {5: (7, 8), 6: (2, 2)})
    )  # an unknown branch
    # not counted: a running dialogue of this run, a finished dialogue of another run
    DialogueFactory(run=run, task=hard, attempt=3, status=DialogueStatus.RUNNING, kept=True,
                    turns=turns([*nsc6, "human"], {5: (0, 0), 6: (0, 0)}))  # fmt: skip
    other = RunFactory(name="o")
    DialogueFactory(run=other, task=hard, attempt=0, kept=True, turns=turns([*nsc6, "human"], {5: (1, 1), 6: (1, 1)}))
    return run


def by(rows, *keys):
    return {tuple(r[k] for k in keys): r for r in rows}


def check_figure(figure) -> str:
    text = json.dumps(figure)  # plain JSON types
    # no colour bar (the CSP forbids its inline styles) outside Plotly's default template
    drawn = json.dumps([figure["data"], {k: v for k, v in figure["layout"].items() if k != "template"}])
    assert "colorbar" not in drawn and "showscale" not in drawn and "coloraxis" not in drawn
    assert figure["layout"]["height"] == 300 and figure["layout"]["xaxis"]["title"]["text"] == "turn"
    assert figure["layout"]["yaxis"]["title"]["text"] and figure["layout"]["showlegend"] is True
    return text


def test_summary_by_hand():
    s = summarise([6, 4, 5])  # mean 5, s = 1
    assert (s.n, s.mean, s.sd) == (3, 5, 1)
    assert s.low == pytest.approx(5 - T2 / math.sqrt(3)) and s.high == pytest.approx(5 + T2 / math.sqrt(3))
    one = summarise([7.0])
    assert (one.n, one.mean, one.sd, one.low, one.high) == (1, 7.0, None, None, None)
    flat = summarise([3.0, 3.0])
    assert flat.low == flat.high == 3.0


def test_goal_by_turn(run, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        chart = goal_by_turn(run.pk)
    assert not chart.empty and chart.columns == ["turn", "group", "n", "mean", "sd", "low", "high"]
    assert [list(r) for r in chart.rows] == [chart.columns] * len(chart.rows)
    assert [(r["turn"], r["group"]) for r in chart.rows] == [
        (5, "hard"), (5, "ordinary"), (6, "hard"), (6, "ordinary"), (7, "ordinary"),
    ]  # fmt: skip
    rows = by(chart.rows, "turn", "group")
    # hard, turn 5: 6, 4, 5 (the running dialogue's 0 and the other run's 1 are not counted)
    h5 = rows[(5, "hard")]
    assert (h5["n"], h5["mean"], h5["sd"]) == (3, 5, 1)
    assert h5["low"] == pytest.approx(5 - T2 / math.sqrt(3)) and h5["high"] == pytest.approx(5 + T2 / math.sqrt(3))
    # hard, turn 6: 7, 8 → s = √0.5, half-width t(0.975, 1)·√0.5/√2 = t/2
    h6 = rows[(6, "hard")]
    assert (h6["n"], h6["mean"]) == (2, 7.5) and h6["sd"] == pytest.approx(math.sqrt(0.5))
    assert (h6["low"], h6["high"]) == (pytest.approx(7.5 - T1 / 2), pytest.approx(7.5 + T1 / 2))
    # ordinary, turn 5: 9, 7 → s = √2, half-width t; turn 6: 5, 2 → s = 3/√2, half-width 1.5·t; turn 7: 3 alone
    o5, o6, o7 = rows[(5, "ordinary")], rows[(6, "ordinary")], rows[(7, "ordinary")]
    assert (o5["n"], o5["mean"], o5["low"], o5["high"]) == (2, 8, pytest.approx(8 - T1), pytest.approx(8 + T1))
    assert (o6["n"], o6["mean"], o6["low"], o6["high"]) == (
        2, 3.5, pytest.approx(3.5 - 1.5 * T1), pytest.approx(3.5 + 1.5 * T1)
    )  # fmt: skip
    assert (o7["n"], o7["mean"], o7["sd"], o7["low"], o7["high"]) == (1, 3, None, None, None)

    check_figure(chart.figure)
    traces = {t["name"]: t for t in chart.figure["data"]}
    assert set(traces) == {"hard tasks", "hard tasks: 95% interval", "ordinary tasks", "ordinary tasks: 95% interval"}
    hard = traces["hard tasks"]
    assert hard["y"] == [5, 7.5] and [c[:2] for c in hard["customdata"]] == [[5, 3], [6, 2]]
    assert "n = %{customdata[1]}" in hard["hovertemplate"]
    # the error bars: only where n ≥ 2 (ordinary turn 7 has none)
    bars = traces["ordinary tasks: 95% interval"]
    assert bars["y"] == [8, 3.5] and bars["error_y"]["array"] == pytest.approx([T1, 1.5 * T1])
    assert bars["error_y"]["arrayminus"] == pytest.approx([T1, 1.5 * T1])
    assert traces["ordinary tasks"]["customdata"][2][2] == "none (n < 2)"


def test_goal_by_turn_kept_only(run):
    rows = by(goal_by_turn(run.pk, kept_only=True).rows, "turn", "group")
    assert set(rows) == {(5, "hard"), (6, "hard"), (5, "ordinary"), (6, "ordinary"), (7, "ordinary")}
    assert (rows[(5, "hard")]["n"], rows[(5, "hard")]["mean"]) == (2, 5.5)
    assert (rows[(6, "hard")]["n"], rows[(6, "hard")]["mean"], rows[(6, "hard")]["low"]) == (1, 7, None)
    assert (rows[(5, "ordinary")]["n"], rows[(5, "ordinary")]["mean"]) == (1, 9)
    assert (rows[(6, "ordinary")]["n"], rows[(6, "ordinary")]["mean"]) == (1, 5)


def test_ratings_by_strategy(run, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        chart = ratings_by_strategy(run.pk)
    assert chart.columns == ["turn", "strategy", "metric", "n", "mean", "sd", "min", "max"]
    rows = by(chart.rows, "turn", "strategy", "metric")
    assert list(rows) == [
        (5, "NSC", "goal_c"), (5, "NSC", "goal_p"), (6, "SSI", "goal_c"), (6, "SSI", "goal_p"),
        (6, "NSI", "goal_c"), (6, "NSI", "goal_p"), (6, "other", "goal_c"), (6, "other", "goal_p"),
        (7, "other", "goal_c"), (7, "other", "goal_p"),
    ]  # fmt: skip
    nsc = rows[(5, "NSC", "goal_c")]  # 6, 4, 5, 9, 7
    assert (nsc["n"], nsc["mean"], nsc["min"], nsc["max"]) == (5, 6.2, 4, 9)
    assert nsc["sd"] == pytest.approx(math.sqrt(((0.2**2) + 2.2**2 + 1.2**2 + 2.8**2 + 0.8**2) / 4))
    assert (rows[(5, "NSC", "goal_p")]["n"], rows[(5, "NSC", "goal_p")]["mean"]) == (5, pytest.approx(7.7))
    assert (rows[(6, "SSI", "goal_c")]["n"], rows[(6, "SSI", "goal_c")]["mean"]) == (2, 6)  # 7, 5
    assert (rows[(6, "SSI", "goal_p")]["n"], rows[(6, "SSI", "goal_p")]["mean"]) == (2, 7.5)  # 9, 6
    assert (rows[(6, "NSI", "goal_c")]["n"], rows[(6, "NSI", "goal_c")]["mean"]) == (1, 8)
    assert (rows[(6, "other", "goal_c")]["n"], rows[(6, "other", "goal_c")]["mean"]) == (1, 2)  # the "<i>" branch
    assert (rows[(7, "other", "goal_p")]["n"], rows[(7, "other", "goal_p")]["mean"]) == (1, 3)  # forced

    text = check_figure(chart.figure)
    traces = {t["name"]: t for t in chart.figure["data"]}
    means = traces["NSC · goal_c (now)"]
    assert means["y"] == [6.2] and means["customdata"] == [[5, 5]] and "n = %{customdata[1]}" in means["hovertemplate"]
    points = traces["NSC · goal_c (now): each rating"]
    assert sorted(points["y"]) == [4, 5, 6, 7, 9] and points["marker"]["opacity"] < 0.5
    assert len({round(x, 6) for x in points["x"]}) == 5 and all(abs(x - 5) < 0.35 for x in points["x"])
    # goal_p is there, hidden until its legend entry is clicked; its points toggle with it
    goal_p = traces["NSC · goal_p (predicted)"]
    assert (
        goal_p["visible"] == "legendonly" and traces["NSC · goal_p (predicted): each rating"]["visible"] == "legendonly"
    )
    assert goal_p["legendgroup"] == traces["NSC · goal_p (predicted): each rating"]["legendgroup"]
    # the unknown branch is shown in the hover, escaped
    assert "<i>" not in text and "&lt;i&gt;" in text and "<b>hi" not in text  # (the turns' text is never shown)
    assert [str(c) for c in traces["other · goal_c (now): each rating"]["customdata"][0][::2]] == ["6", "&lt;i&gt;"]
    # the same figure every time (fixed jitter)
    assert ratings_by_strategy(run.pk).figure == chart.figure


def test_ratings_by_strategy_kept_only(run):
    rows = by(ratings_by_strategy(run.pk, kept_only=True).rows, "turn", "strategy", "metric")
    assert {k[:2] for k in rows} == {(5, "NSC"), (6, "SSI"), (7, "other")}
    assert (rows[(5, "NSC", "goal_c")]["n"], rows[(5, "NSC", "goal_c")]["mean"]) == (3, pytest.approx(20 / 3))


def test_strategy_use(run, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        chart = strategy_use(run.pk)
    assert chart.columns == ["turn", "strategy", "count", "total", "share"]
    used = ["NSC", "SSI", "NSI", "forced", "other"]  # no "human": only the excluded dialogues have one
    assert [(r["turn"], r["strategy"]) for r in chart.rows] == [(t, b) for t in range(8) for b in used]
    rows = by(chart.rows, "turn", "strategy")
    for turn in range(8):
        assert sum(rows[(turn, b)]["share"] for b in used) == pytest.approx(1)
    for turn in range(6):
        assert (rows[(turn, "NSC")]["count"], rows[(turn, "NSC")]["total"], rows[(turn, "NSC")]["share"]) == (5, 5, 1)
    assert [rows[(6, b)]["count"] for b in used] == [0, 2, 1, 0, 1]
    assert [rows[(6, b)]["share"] for b in used] == [0, 0.5, 0.25, 0, 0.25] and rows[(6, "SSI")]["total"] == 4
    assert (rows[(7, "forced")]["count"], rows[(7, "forced")]["total"], rows[(7, "forced")]["share"]) == (1, 1, 1)

    text = check_figure(chart.figure)
    assert chart.figure["layout"]["barmode"] == "stack" and chart.figure["layout"]["yaxis"]["range"] == [0, 1]
    traces = {t["name"]: t for t in chart.figure["data"]}
    assert list(traces) == used and all(t["type"] == "bar" for t in traces.values())
    assert traces["SSI"]["y"][6] == 0.5 and traces["SSI"]["customdata"][6] == [2, 4]
    assert "%{customdata[0]} of" in traces["SSI"]["hovertemplate"] and "<i>" not in text


def test_strategy_use_kept_only(run):
    rows = by(strategy_use(run.pk, kept_only=True).rows, "turn", "strategy")
    assert {k[1] for k in rows} == {"NSC", "SSI", "forced"}
    assert (rows[(5, "NSC")]["count"], rows[(6, "SSI")]["count"], rows[(6, "SSI")]["share"]) == (3, 2, 1)
    assert (rows[(7, "forced")]["share"], rows[(7, "SSI")]["share"]) == (1, 0)


def test_a_run_without_finished_dialogues_is_empty(run):
    Dialogue.objects.filter(run=run).update(status=DialogueStatus.FAILED)
    for compute in (goal_by_turn, ratings_by_strategy, strategy_use):
        chart = compute(run.pk)
        assert chart.empty and chart.rows == [] and chart.columns
        assert "no " in json.dumps(chart.figure) and chart.figure["data"] == []
    assert goal_by_turn(run.pk + 1000).empty
