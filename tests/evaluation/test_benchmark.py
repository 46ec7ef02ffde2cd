"""Evaluation runs: two models on two real OpenAI-compatible test servers, the agent against a reference model with
who-speaks-first from the paper's A.3 partition over the combo file's order; SOTOPIA's rules (plain prompts, no
rating, one leave ends it); only the agent scored against a reference, both averaged in self-play; tables match
hand computations; the manifest repeats the run."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from scipy import stats

from dialogues.library.models import Task
from dialogues.llm.backends import Backend
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.models import Dialogue, LLMCall, Run, Setting
from evaluation import benchmark, partition, report
from evaluation.models import EpisodeScore
from tests.support.llm_answers import action
from tests.support.llm_server import ScriptedLLMServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def turn_of(body) -> int:
    return int(re.findall(r"You are at Turn #(\d+)", body["messages"][0]["content"])[-1])


def speaker(model: str, leave_at: int | None = None):
    def answer(purpose, body):
        assert purpose == "action.native", purpose  # plain prompts only: no rating, no strategy
        turn = turn_of(body)
        if leave_at is not None and turn >= leave_at:
            return action("", "leave")
        return action(f"{model} speaks at turn {turn}")

    return answer


@pytest.fixture
def servers():
    with (
        ScriptedLLMServer("agent-model", responder=speaker("agent")) as agent,
        ScriptedLLMServer("ref-model", responder=speaker("reference")) as ref,
    ):
        yield agent, ref


def hard_tasks(n: int) -> list[Task]:
    order = {pk: i for i, pk in enumerate(benchmark.default_order())}
    return sorted(Task.objects.filter(hard=True), key=lambda t: order[t.external_id])[:n]


def test_the_agent_plays_against_a_reference_as_the_partition_says(imported_sotopia, servers):
    agent, ref = servers
    tasks = hard_tasks(4)
    run = benchmark.benchmark_create(
        name="vs ref", setting=Setting.REFERENCE, agent=Backend("openai", "agent-model", (agent.base_url,)),
        reference=Backend("openai", "ref-model", (ref.base_url,)), tasks=tasks, max_turns=6,
    )  # fmt: skip
    order = benchmark.default_order()
    first = partition.reference_first(order)
    assert run.benchmark["hard_check"] == {"marked": 32, "hard": 5, "mismatched": run.benchmark["hard_check"][
        "mismatched"], "fits": False}  # fmt: skip
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    for d in Dialogue.objects.filter(run=run).select_related("task"):
        expected_side = 1 if d.task.external_id in first else 0
        assert d.agent_side == expected_side and d.status == "finished" and d.end_reason == "turn_limit"
        assert d.kept and d.filter_passed and not d.ratings.exists()  # an episode is never rated or filtered
        for turn in d.turns.order_by("index"):
            model = "agent" if turn.speaker == d.agent_side else "reference"
            assert turn.argument == f"{model} speaks at turn {turn.index}" and turn.branch == "NSC"
        models = set(LLMCall.objects.filter(dialogue=d).values_list("turn_index", "model"))
        assert all((m == "agent-model") == (i % 2 == d.agent_side) for i, m in models)
    sides = {d.agent_side for d in run.dialogues.all()}
    assert sides <= {0, 1}


def test_one_leave_ends_an_episode(imported_sotopia):
    with ScriptedLLMServer("m", responder=speaker("agent", leave_at=3)) as server:
        run = benchmark.benchmark_create(
            name="self", setting=Setting.SELF_PLAY, agent=Backend("openai", "m", (server.base_url,)), reference=None,
            tasks=hard_tasks(1),
        )  # fmt: skip
        run_coroutine(lambda llms: run_to_end(run.pk, llms))
    d = run.dialogues.get()
    assert d.end_reason == "one_left" and d.turns.count() == 4 and d.agent_side is None
    assert run.reference_model == "" and run.setting == "self_play"


def scores(run, values: dict[tuple[int, int], float]) -> None:
    """GOAL per (dialogue order, side); the other dimensions fixed, Overall = their mean."""
    for i, d in enumerate(run.dialogues.order_by("pk")):
        for side in (0, 1):
            goal = values[(i, side)]
            EpisodeScore.objects.create(dialogue=d, speaker=side, judge_model="j", prompt_version="v",
                                        prompt_sha256="s", bel=7, rel=0, kno=0, sec=0, soc=0, fin=0, goal=goal,
                                        overall=(7 + goal) / 7)  # fmt: skip
    run.dialogues.update(status="finished")


def test_only_the_agent_counts_against_a_reference_and_self_play_averages_both(imported_sotopia):
    tasks = hard_tasks(3)
    ref_run = benchmark.benchmark_create(
        name="r", setting=Setting.REFERENCE, agent=Backend("simulated", "a"), reference=Backend("simulated", "b"),
        tasks=tasks, sides={t.external_id: i % 2 for i, t in enumerate(tasks)},
    )  # fmt: skip
    self_run = benchmark.benchmark_create(
        name="s", setting=Setting.SELF_PLAY, agent=Backend("simulated", "a"), reference=None, tasks=tasks
    )
    goals = {(0, 0): 8, (0, 1): 2, (1, 0): 3, (1, 1): 9, (2, 0): 6, (2, 1): 0}
    scores(ref_run, goals)
    scores(self_run, goals)
    sides = dict(ref_run.dialogues.values_list("pk", "agent_side"))
    agent_goals = [goals[(i, sides[pk])] for i, pk in enumerate(sorted(sides))]
    row = benchmark.benchmark_row(ref_run)
    half = stats.t.ppf(0.975, 2) * stats.tstd(agent_goals) / 3**0.5
    assert row.goal["all"].mean == pytest.approx(sum(agent_goals) / 3)
    assert row.goal["all"].half_width == pytest.approx(half) and row.goal["hard"].n == 3
    both = [(8 + 2) / 2, (3 + 9) / 2, (6 + 0) / 2]
    self_row = benchmark.benchmark_row(self_run)
    assert self_row.goal["all"].mean == pytest.approx(sum(both) / 3)
    assert self_row.overall["all"].mean == pytest.approx(sum((7 + g) / 7 for g in both) / 3)
    assert {r.run.pk for r in benchmark.leaderboard()} == {ref_run.pk, self_run.pk}
    ids = list(ref_run.dialogues.values_list("pk", flat=True))
    assert report.sif_table(ids, None).rows[2]["label"] == "agent under test"


def test_a_manifest_repeats_the_run(imported_sotopia, servers, settings):
    agent, ref = servers
    tasks = hard_tasks(2)
    run = benchmark.benchmark_create(
        name="m", setting=Setting.REFERENCE, agent=Backend("openai", "agent-model", (agent.base_url,)),
        reference=Backend("openai", "ref-model", (ref.base_url,)), tasks=tasks, max_turns=4, seed=7,
    )  # fmt: skip
    out = io.StringIO()
    call_command("benchmark", "--write-manifest", str(run.pk), stdout=out)
    data = json.loads(out.getvalue())
    assert data["schema"] == "omega-web/benchmark/1" and data["seed"] == 7 and data["config"]["max_turns"] == 4
    assert data["agent"] == {"backend": "openai", "model": "agent-model", "endpoints": [agent.base_url]}
    assert "key" not in json.dumps(data).lower()
    again = benchmark.from_manifest(data)
    pairs = lambda r: sorted(r.dialogues.values_list("task__external_id", "agent_side", "seed"))  # noqa: E731
    assert pairs(again) == pairs(run) and again.reference_model == "ref-model" and again.seed == 7
    with pytest.raises(benchmark.BenchmarkError, match="would not repeat"):
        benchmark.from_manifest({**data, "prompt_set_version": "0000"})
    with pytest.raises(benchmark.BenchmarkError, match="not a benchmark manifest"):
        benchmark.from_manifest({"schema": "x"})


def test_the_command_benchmarks_and_evaluates(imported_sotopia):
    out = io.StringIO()
    call_command("benchmark", "--setting", "reference", "--tasks", "hard", "--limit", "2", "--simulated",
                 "--max-turns", "4", "--evaluate", stdout=out)  # fmt: skip
    text = out.getvalue()
    assert "5 point to hard tasks under the combo file order: the paper's partition does NOT fit it" in text
    assert "2 episodes finished" in text and re.search(r"hard tasks\s+2\s+GOAL", text) and "S-IF of the agent" in text


def test_the_command_refuses_sotopias_evaluator_before_playing_when_it_is_not_installed(demo_tasks, settings, tmp_path):
    settings.OMEGA_SOTOPIA_PYTHON = str(tmp_path / "nowhere" / "python")
    with pytest.raises(CommandError, match=r"sotopia's evaluator is not installed.*make sotopia"):
        call_command("benchmark", "--setting", "self-play", "--tasks", "all", "--simulated", "--evaluate",
                     "--evaluator", "sotopia", stdout=io.StringIO())  # fmt: skip
    assert not Run.objects.exists()  # nothing played


def test_repeat_from_the_run_page_and_download_the_manifest(imported_sotopia, client_for):
    from omega_web.roles import Role

    tasks = hard_tasks(2)
    run = benchmark.benchmark_create(
        name="b", setting=Setting.REFERENCE, agent=Backend("simulated", "simulated-expert"),
        reference=Backend("simulated", "simulated-expert"), tasks=tasks, max_turns=4,
    )  # fmt: skip
    viewer, researcher = client_for(Role.VIEWER), client_for(Role.RESEARCHER)
    page = viewer.get(f"/runs/{run.pk}/").content.decode()
    assert "Evaluation run" in page and "does not fit this order" in page
    data = json.loads(viewer.get(f"/runs/{run.pk}/manifest.json").content)
    assert data["setting"] == "reference" and len(data["tasks"]) == 2
    assert viewer.post(f"/runs/{run.pk}/repeat/").status_code == 403
    answer = researcher.post(f"/runs/{run.pk}/repeat/")
    again = Dialogue.objects.exclude(run=run).first().run
    assert answer.status_code == 302 and answer["Location"] == f"/runs/{again.pk}/"
    pairs = lambda r: sorted(r.dialogues.values_list("task__external_id", "agent_side"))  # noqa: E731
    assert pairs(again) == pairs(run) and again.name == "b (repeated)"
    assert "vs simulated-expert" in viewer.get("/evaluations/leaderboard/").content.decode()
