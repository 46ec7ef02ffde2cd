"""Experiments over HTTP: the fork form (one fork, a counterfactual batch, refusals), the fork's and the parent's
pages, playing a side in the browser, and the comparison (alignment from the fork point, branch differences)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from dialogues.engine.config import RunConfig
from dialogues.experiments.selectors import compare
from dialogues.experiments.services import Arm, ForkSettings, dialogue_fork
from dialogues.inspection.forks import turns_to_agreement
from dialogues.library.models import Task
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.models import Branch, Dialogue, DialogueStatus, Run, RunKind, Turn
from omega_web.roles import Role
from tests.factories import scenario_tasks, simulated_run

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HX = {"HX-Request": "true"}


@pytest.fixture
def parent(demo_tasks) -> Dialogue:
    run = simulated_run(scenario_tasks("library_roof_fund")[:1], name="parent")
    return run.dialogues.order_by("attempt").first()


def fork_data(**changes) -> dict[str, str]:
    """The fork form as a browser sends it untouched (every field at the parent's value, the simulator's config)."""
    config = RunConfig(judge_samples=3)
    data = {"turn": "5", "mode": "single", "count": "3", "batch_seed": "0", "human_side": ""}
    for prefix in ("a", "b"):
        data.update(
            {
                f"{prefix}-force_strategy": "",
                f"{prefix}-nsi_goal_c_max": str(config.nsi_goal_c_max),
                f"{prefix}-goal_p_high": str(config.goal_p_high),
                f"{prefix}-ssi_goal_c_max": str(config.ssi_goal_c_max),
                f"{prefix}-judge_samples": str(config.judge_samples),
                f"{prefix}-max_turns": str(config.max_turns),
                f"{prefix}-temperature": str(config.sampling.temperature),
            }
        )
    data.update({k: str(v) for k, v in changes.items()})
    return data


def test_the_fork_form_starts_at_the_parents_values(parent, client_for):
    page = client_for(Role.RESEARCHER).get(reverse("dialogue_fork", args=[parent.pk]) + "?turn=5").content.decode()
    assert 'name="turn" value="5"' in page and 'name="a-nsi_goal_c_max" value="7.5"' in page
    assert "Last shared turn: <strong>5</strong>" in page
    assert f"This dialogue's seed: {parent.seed}" in page
    # the strategies it may force are explained on the form, from the engine's own words
    from dialogues.engine.branches import STRATEGY_MEANINGS, Branch

    assert "NSC: native strategy clone: the agent&#x27;s plain prompt, nothing injected" in page
    assert all(meaning.replace("'", "&#x27;") in page for meaning in STRATEGY_MEANINGS.values())
    assert '<option value="NSC">force NSC (native strategy clone)</option>' in page and Branch.NSC == "NSC"


def test_one_fork_from_the_browser_and_what_its_page_and_the_parents_show(parent, client_for):
    client = client_for(Role.RESEARCHER)
    answer = client.post(reverse("dialogue_fork", args=[parent.pk]), fork_data(**{"a-disable_nsi": "on"}))
    fork = Dialogue.objects.get(parent=parent)
    assert answer.status_code == 302 and answer["Location"] == reverse("dialogue_detail", args=[fork.pk])
    assert fork.changes == {"config": {"disabled_strategies": ["NSI"]}} and fork.fork_turn == 5
    assert fork.status == DialogueStatus.FINISHED  # eager tasks in tests: it ran to the end
    page = client.get(answer["Location"]).content.decode()
    assert f'Fork of <a href="{reverse("dialogue_detail", args=[parent.pk])}">dialogue #{parent.pk}</a>' in page
    assert "shares turns 0–5, its own turns start at 6" in page
    assert '<th scope="row">disabled strategies</th><td>—</td><td><strong>NSI</strong></td>' in page
    assert page.count('class="badge shared"') == 6
    parent_url = reverse("dialogue_detail", args=[parent.pk])
    assert f'Its LLM calls are with <a href="{parent_url}#turn-{parent.pk}-3">' in page
    parent_page = client.get(reverse("dialogue_detail", args=[parent.pk])).content.decode()
    assert "Forks of this dialogue (1)" in parent_page and f"?a={parent.pk}&amp;b={fork.pk}" in parent_page
    assert "disabled strategies: NSI" in parent_page and "1 fork ↓" in parent_page
    listed = client.get(reverse("dialogue_list"), {"origin": "fork"}, headers=HX).content.decode()
    assert f"#{fork.pk}</a>" in listed and 'class="badge fork"' in listed and f"#{parent.pk}</a>" not in listed
    generated = client.get(reverse("dialogue_list"), {"origin": "generation"}, headers=HX).content.decode()
    assert f"#{fork.pk}</a>" not in generated and f"#{parent.pk}</a>" in generated


def test_a_counterfactual_batch_from_the_browser(parent, client_for):
    client = client_for(Role.RESEARCHER)
    data = fork_data(mode="batch", count=3, **{"b-disable_nsi": "on"})
    answer = client.post(reverse("dialogue_fork", args=[parent.pk]), data)
    run = Run.objects.get(kind=RunKind.FORK)
    assert answer.status_code == 302 and answer["Location"] == reverse("run_detail", args=[run.pk])
    assert sorted(run.dialogues.values_list("arm", flat=True)) == ["A"] * 3 + ["B"] * 3
    page = client.get(answer["Location"]).content.decode()
    assert "Counterfactual outcome" in page and page.count('class="plot"') == 2
    assert "disabled strategies: — → <strong>NSI</strong>" in page
    assert "3 / 3" in page


def test_refusals_name_the_problem_and_create_nothing(parent, client_for):
    client = client_for(Role.RESEARCHER)
    same = client.post(reverse("dialogue_fork", args=[parent.pk]), fork_data(mode="batch"))
    assert same.status_code == 400 and "Settings A and B are the same" in same.content.decode()
    late = client.post(reverse("dialogue_fork", args=[parent.pk]), fork_data(turn=99))
    assert late.status_code == 400 and "Share turns up to" in late.content.decode()
    crowd = client.post(reverse("dialogue_fork", args=[parent.pk]), fork_data(mode="batch", human_side=0))
    assert "A person plays one fork at a time" in crowd.content.decode()
    wrong = client.post(reverse("dialogue_fork", args=[parent.pk]), fork_data(**{"a-nsi_goal_c_max": "11"}))
    assert wrong.status_code == 400 and "Setting A" in wrong.content.decode()
    assert not Run.objects.filter(kind=RunKind.FORK).exists()
    assert client_for(Role.ANNOTATOR).post(reverse("dialogue_fork", args=[parent.pk]), fork_data()).status_code == 403


def test_playing_a_side_in_the_browser(parent, client_for):
    client = client_for(Role.RESEARCHER)
    client.post(reverse("dialogue_fork", args=[parent.pk]), fork_data(human_side=0))
    fork = Dialogue.objects.get(parent=parent)
    assert fork.status == DialogueStatus.PAUSED and fork.turns.count() == 6
    page = client.get(reverse("dialogue_detail", args=[fork.pk])).content.decode()
    assert "Your move." in page and "is played by a person" in page and 'name="argument"' in page
    seen = client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[fork.pk])).content.decode()
    assert "Your move." in seen and 'name="argument"' not in seen  # a viewer sees the wait, not the form

    play = reverse("dialogue_play", args=[fork.pk])
    empty = client.post(play, {"action_type": "speak", "argument": " "}, headers=HX)
    assert empty.status_code == 400 and "empty argument for speak" in empty.content.decode()
    assert fork.turns.count() == 6
    said = client.post(play, {"action_type": "speak", "argument": HOSTILE}, headers=HX)
    assert said.status_code == 200
    mine = fork.turns.get(index=6)
    assert mine.human and mine.argument == HOSTILE.strip()
    page = client.get(reverse("dialogue_detail", args=[fork.pk])).content.decode()
    assert HOSTILE not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "played by researcher-user" in page
    # the expert answered and it is the person's move again; a move out of turn is refused
    assert fork.turns.count() == 8 and Dialogue.objects.get(pk=fork.pk).status == DialogueStatus.PAUSED
    assert client_for(Role.ANNOTATOR).post(reverse("dialogue_play", args=[fork.pk]), {}).status_code == 403


def test_comparison_aligns_from_the_fork_point_and_marks_branch_differences(parent, client_for):
    run = dialogue_fork(
        parent_id=parent.pk,
        turn=5,
        arms=[Arm("", ForkSettings(config={"disabled_strategies": ["NSI"]}))],
        seeds=[None],
        created_by=None,
    )
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    fork = run.dialogues.get()
    c = compare(parent.pk, fork.pk)
    assert c.fork_at == 5 and [r.index for r in c.shared] == list(range(6))
    assert all(not r.text_differs for r in c.shared)
    longest = max(parent.turns.count(), fork.turns.count())
    assert [r.index for r in c.rows] == list(range(6, longest))
    assert c.rows[0].a.turn.branch == Branch.NSI and c.rows[0].b.turn.branch == Branch.SSI and c.rows[0].branch_differs
    assert c.branch_differences == sum(1 for r in c.rows if r.branch_differs) > 0
    figure = json.loads(c.figure)
    assert {t["name"] for t in figure["data"]} >= {f"A #{parent.pk} goal_c (now)", f"B #{fork.pk} goal_c (now)"}
    assert any(s["type"] == "line" and s["x0"] == 5.5 for s in figure["layout"]["shapes"])
    viewer = client_for(Role.VIEWER)
    page = viewer.get(reverse("dialogue_compare"), {"a": parent.pk, "b": fork.pk}).content.decode()
    assert "They share turns 0–5 (the fork point)" in page and "≠ branch" in page
    picker = viewer.get(reverse("dialogue_compare"))
    assert picker.status_code == 200 and 'name="a"' in picker.content.decode()
    missing = viewer.get(reverse("dialogue_compare"), {"a": 999999, "b": parent.pk})
    assert missing.status_code == 400 and "There is no dialogue #999999." in missing.content.decode()
    itself = viewer.get(reverse("dialogue_compare"), {"a": parent.pk, "b": parent.pk})
    assert itself.status_code == 400 and "Choose two different dialogues." in itself.content.decode()


def test_unrelated_dialogues_align_on_their_common_prefix(demo_tasks):
    def made(seed: int) -> Dialogue:
        run = simulated_run([Task.objects.filter(scenario__codename="field_trip_seats").first()], name=f"s{seed}",
                            config={"seed": seed})  # fmt: skip
        return run.dialogues.order_by("attempt").first()

    a, b = made(1), made(1)  # the same seed: identical dialogues in two runs
    c = compare(a.pk, b.pk)
    assert c.fork_at == a.turns.count() - 1 and c.rows == []
    d = made(2)  # another seed: the simulator's openings are alike, then the dialogues part
    said = [list(Turn.objects.filter(dialogue=x).order_by("index").values_list("speaker", "action_type", "argument"))
            for x in (a, d)]  # fmt: skip
    common = next(i for i, (x, y) in enumerate(zip(*said, strict=False)) if x != y)
    apart = compare(a.pk, d.pk)
    assert 0 < common < len(said[0]) and apart.fork_at == common - 1 and len(apart.shared) == common
    assert len(apart.shared) + len(apart.rows) == max(len(said[0]), len(said[1]))


def test_turns_to_agreement():
    assert turns_to_agreement([(0, "", "speak"), (1, "confirm_proposal", "speak"), (2, "", "leave")], "both_left") == 2
    assert turns_to_agreement([(0, "", "speak"), (1, "", "leave"), (2, "", "leave")], "both_left") == 3
    assert turns_to_agreement([(0, "", "speak")], "turn_limit") is None
