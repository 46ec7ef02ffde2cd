"""What the people's ratings would change, on a hand-built run: the strategy Eq. 3 chooses (from → to), the
termination votes and the filter verdicts; and the Calibration page that shows them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dialogues.annotation.models import StepRatingAnnotation
from evaluation.calibration.selectors import runs_calibration
from omega_web.roles import Role
from tests.factories import DialogueFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db


def sample(c1: int, c2: int, p1: int, p2: int, go: int) -> dict:
    scores = {"step1": c1, "step2": c2, "step3": p1, "step4": p2, "step5": go}
    return {"scores": scores, "analyses": {}, "votes_to_end": go == 0}


def rated(branch: str, c: int, p: int, *, end: bool = False) -> dict:
    """A turn the judge rated with one sample: goal_c = c, goal_p = p."""
    return {
        "branch": branch,
        "rating": (float(c), float(p)),
        "rating__samples": [sample(c, c, p, p, 0 if end else 1)],
        "rating__terminate": end,
        "rating__valid": 1,
    }


NATIVE = ["hello"] * 5
LEAVE = {"branch": "forced", "action_type": "leave"}
JUDGE_ENDS = {  # goal_c 8.6, goal_p 9; the one sample votes to end
    "branch": "NSC",
    "rating": (8.6, 9.0),
    "rating__samples": [sample(9, 8, 9, 9, 0)],
    "rating__terminate": True,
    "rating__valid": 1,
}


@pytest.fixture
def hand_built():
    """Dialogue A (DSI, no NSI): rated after turns 5 (7, 9 → SSI), 6 (8, 8 → SSI), 7 (9, 9 → NSC) and 8 (8.6 → the
    judge votes to end: a forced leave), both left; its final goal_c 8.6 passes the 8.5 filter.
    Dialogue B: rated after turn 5 (7, 7 → NSI), then the workflow (turns 6, 7; turn 7 rated, the final rating,
    goal_c 7.0 fails the 8.0 filter with NSI)."""
    run = RunFactory(config={}, model="judge-m", prompt_set_version="p1")
    a = DialogueFactory(
        run=run,
        end_reason="both_left",
        turns=[*NATIVE, rated("NSC", 7, 9), rated("SSI", 8, 8), rated("SSI", 9, 9), JUDGE_ENDS, LEAVE, LEAVE],
    )
    b = DialogueFactory(
        run=run,
        end_reason="both_left",
        nsi_used=True,
        turns=[*NATIVE, rated("NSC", 7, 7), {"branch": "NSI"}, rated("NSI", 7, 7)],
    )
    ann, bob = UserFactory(username="ann", role=Role.ANNOTATOR), UserFactory(username="bob", role=Role.ANNOTATOR)

    def answer(dialogue, index, user, *steps):
        turn = dialogue.turns.get(index=index)
        values = dict(zip(("step1", "step2", "step3", "step4", "step5"), steps, strict=False))
        StepRatingAnnotation.objects.create(turn=turn, dialogue=dialogue, annotator=user, **values)

    answer(a, 5, ann, 6, 6, 8, 8, 1)  # people: goal_c 6.5, goal_p 8 → NSI (judge: SSI)
    answer(a, 5, bob, 7, 7, 8, 8, 1)
    answer(a, 6, ann, 8, 8, 8, 8, 1)  # people: 8, 8.5 → NSC (judge: SSI)
    answer(a, 6, bob, 8, 8, 9, 9, 1)
    answer(a, 7, ann, 9, 9, 9, 9, 0)  # ann votes to end: strict → leave (judge: NSC)
    answer(a, 8, ann, 8, 8, 8, 8, 1)  # final: people 8.0 < 8.5 → fails (judge 8.6 passes); go on (judge: end)
    answer(a, 8, bob, 8, 8, 8, 8, 1)
    answer(b, 5, ann, 9, 9, 9, 9, 1)  # people: 9, 9 → NSC (judge: NSI)
    answer(b, 7, ann, 9, 9, 9, 9, 1)  # inside the workflow: no strategy; final: 9 ≥ 8.0 → passes (judge fails)
    answer(b, 7, bob, 4)  # step1 only: in the statistics, not in the decisions
    return run


def test_decision_changes_on_a_hand_built_run(hand_built):
    c = runs_calibration([hand_built], resamples=50)
    changes = c.changes
    assert dict(changes.strategy) == {
        ("SSI", "NSI"): 1,
        ("SSI", "NSC"): 1,
        ("NSC", "leave (termination)"): 1,
        ("leave (termination)", "SSI"): 1,
        ("NSI", "NSC"): 1,
    }
    assert changes.strategy_turns == 5
    # judge's vote first: go on / end
    assert changes.termination_cells == {"go_go": 3, "go_end": 1, "end_go": 1, "end_end": 0}
    verdicts = {(f.judge_passes, f.people_passes) for f in changes.filters}
    assert verdicts == {(True, False), (False, True)}
    assert (changes.would_fail, changes.would_pass) == (1, 1)
    assert changes.incomplete == 0  # bob's step1-only answer sits beside ann's complete one on turn 7
    assert c.rated_by_people == 6


def test_step_judge_statistics_on_the_hand_built_run(hand_built):
    c = runs_calibration([hand_built], resamples=50)
    step = c.sections[0]
    rows = {r.key: r.result for r in step.rows}
    assert step.version == "judge-m · prompt set built-in (p1)"
    # step1 has every answered turn: 6 turns; on turn 7 of B the people's step1 mean is (9 + 4) / 2
    assert rows["step1"].items == 6
    assert (7.0, 6.5) in rows["step1"].pairs
    # goal_c: judge 7, 8, 9, 8.6 (A) and 7, 7 (B); people 6.5, 8, 9, 8 and 9, 9 (bob's step1-only answer has no
    # goal_c): judge − people = 0.5, 0, 0, 0.6, −2, −2 → bias −2.9/6, MAE 5.1/6
    assert rows["goal_c"].items == 6
    assert rows["goal_c"].bias.value == pytest.approx(-2.9 / 6)
    assert rows["goal_c"].mae.value == pytest.approx(5.1 / 6)
    # step5: the judge's share of samples saying go on (A's turn 8: 0) against the people's
    assert (0.0, 1.0) in rows["step5"].pairs


def test_calibration_page_shows_agreement_and_changes(hand_built, client_for):
    client = client_for(Role.VIEWER)
    page = client.get(reverse("run_calibration", args=[hand_built.pk]), {"resamples": 100})
    assert page.status_code == 200
    text = page.content.decode()
    assert "On <strong>1</strong> of 5 turns the people's ratings choose <strong>NSI</strong> instead of" in text
    assert "<strong>1</strong> dialogue would fail the filter" in text
    assert 'Spearman <span class="greek">ρ</span>' in text and "Krippendorff" in text
    assert "100 resamples, seed 0" in text
    assert 'id="scatter-0-goal_c"' in text
    across = client.get(reverse("calibration_index"))
    assert "judge-m" in across.content.decode()
    group = client.get(reverse("calibration_index"), {"model": "judge-m", "prompts": "p1"})
    assert group.status_code == 200 and "1 run" in group.content.decode()
    assert client.get(reverse("calibration_index"), {"model": "other", "prompts": "p1"}).status_code == 404


def test_relevance_and_sotopia_eval_judges_against_people(client_for):
    from dialogues.annotation.models import EpisodeAnnotation, RelevanceAnnotation
    from evaluation.models import EpisodeScore, RelevanceScore

    run = RunFactory(config={}, model="expert", prompt_set_version="p1")
    dialogue = DialogueFactory(run=run, turns=["a", "b", "c"])
    ann, bob = UserFactory(username="ann", role=Role.ANNOTATOR), UserFactory(username="bob", role=Role.ANNOTATOR)
    # relevance: judge 1, 0.5, −0.5 against ann 1, 0, −1 and bob 0.5 (first action only)
    for turn, judge, people in zip(
        dialogue.turns.order_by("index"), (1.0, 0.5, -0.5), ({ann: 1.0, bob: 0.5}, {ann: 0.0}, {ann: -1.0}), strict=True
    ):
        RelevanceScore.objects.create(turn=turn, dialogue=dialogue, speaker=turn.speaker, judge_model="judge-r",
                                      prompt_version="r1", prompt_sha256="x", score=judge)  # fmt: skip
        for user, score in people.items():
            RelevanceAnnotation.objects.create(turn=turn, dialogue=dialogue, annotator=user, score=score)
    for speaker, goal in ((0, 8.0), (1, 6.0)):
        EpisodeScore.objects.create(dialogue=dialogue, speaker=speaker, judge_model="judge-e", prompt_version="e1",
                                    prompt_sha256="x", goal=goal, sec=-1.0)  # fmt: skip
    EpisodeAnnotation.objects.create(dialogue=dialogue, speaker=0, annotator=ann, scores={"GOAL": 7.0})
    EpisodeAnnotation.objects.create(dialogue=dialogue, speaker=1, annotator=ann, scores={"GOAL": 4.0, "SEC": 0})
    c = runs_calibration([run], resamples=100)
    relevance = next(s for s in c.sections if s.judge == "relevance")
    assert relevance.version == "judge-r · prompt r1"
    r = relevance.rows[0].result
    # people's means 0.75, 0, −1: judge − people = 0.25, 0.5, 0.5 → bias = MAE = 1.25 / 3; ranks agree: ρ = 1
    assert (r.items, r.people, r.people_items) == (3, 2, 1)
    assert r.bias.value == pytest.approx(1.25 / 3) and r.mae.value == pytest.approx(1.25 / 3)
    assert r.spearman.value == pytest.approx(1.0)
    episode = next(s for s in c.sections if s.judge == "SOTOPIA-EVAL")
    rows = {row.key: row.result for row in episode.rows}
    assert set(rows) == {"GOAL", "SEC"}  # the dimensions people scored
    assert rows["GOAL"].bias.value == pytest.approx(1.5)  # (8 − 7 + 6 − 4) / 2
    assert rows["SEC"].items == 1 and rows["SEC"].mae.value == pytest.approx(1.0)
    page = client_for(Role.VIEWER).get(reverse("run_calibration", args=[run.pk]), {"resamples": 100})
    text = page.content.decode()
    assert "relevance judge" in text and "SOTOPIA-EVAL judge" in text and 'id="scatter-1-relevance"' in text
    assert "Calibration queue</a>" not in text  # viewers cannot open the queue


def test_the_command_line_prints_the_same(hand_built, capsys):
    import json

    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("calibration", str(hand_built.pk), "--resamples", "100", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["resamples"] == 100 and data["seed"] == 0
    goal_c = next(q for q in data["judges"][0]["quantities"] if q["quantity"] == "goal_c")
    assert goal_c["items"] == 6 and goal_c["bias"]["value"] == pytest.approx(-2.9 / 6)
    assert {"judge": "SSI", "people": "NSI", "turns": 1} in data["decision_changes"]["strategy"]
    assert data["decision_changes"]["termination"]["end_go"] == 1
    call_command("calibration", str(hand_built.pk), "--resamples", "100")
    text = capsys.readouterr().out
    assert "strategy SSI -> NSI: 1 of 5 turns" in text and "1 would fail, 1 would pass" in text
    with pytest.raises(CommandError, match="no run 999"):
        call_command("calibration", "999")
