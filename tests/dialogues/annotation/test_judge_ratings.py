"""People rating what the judges rated: the step-rating questions on a rated turn (blind mode hides the judge's
numbers until the rater saved), relevance per action, SOTOPIA-EVAL per agent, versions and conflicts, the
calibration queue; and who may do what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dialogues.annotation.judge_ratings import calibration_next, calibration_queue_build
from dialogues.annotation.models import (
    EPISODE_DIMENSIONS,
    EpisodeAnnotation,
    RelevanceAnnotation,
    StepRatingAnnotation,
)
from dialogues.library.models import Task
from dialogues.runs.models import Dialogue, StepRating
from evaluation.judges import DIMENSIONS
from omega_web.roles import Role
from tests.factories import UserFactory, simulated_run

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HX-Request": "true"}


@pytest.fixture
def run(demo_tasks):
    return simulated_run(list(Task.objects.order_by("id")[:3]), name="calibrate me")


@pytest.fixture
def dialogue(run) -> Dialogue:
    return run.dialogues.filter(kept=True).first()


def rated_turn(dialogue):
    return StepRating.objects.filter(dialogue=dialogue).order_by("turn__index").first().turn


ANSWERS = {"version": 0, "step1": "6", "step2": "7", "step3": "8", "step4": "8", "step5": "1", "relevance": "0.5"}


def test_blind_mode_hides_the_judges_numbers_until_the_rater_saved(run, dialogue, client_for):
    run.blind_annotation = True
    run.save()
    turn = rated_turn(dialogue)
    rating = turn.rating
    client = client_for(Role.ANNOTATOR)
    url = reverse("turn_judge_rating", args=[turn.pk])
    page = client.get(url).content.decode()
    assert "step1" in page and "Should it go on?" in page
    assert "judge's numbers are hidden" in page
    assert f"goal_c <strong>{rating.goal_c:.2f}</strong>" not in page and "Sample</th>" not in page
    # no strategy, reason or rating of any turn either: only the text of the conversation so far
    assert turn.reason not in page and f"{rating.goal_p:.2f}" not in page
    saved = client.post(url, ANSWERS, headers=HX)
    assert saved.status_code == 200 and "Saved" in saved.content.decode()
    assert f"goal_c <strong>{rating.goal_c:.2f}</strong>" in saved.content.decode()
    row = StepRatingAnnotation.objects.get(turn=turn)
    assert (row.step1, row.step2, row.step3, row.step4, row.step5, row.version) == (6, 7, 8, 8, 1, 1)
    assert RelevanceAnnotation.objects.get(turn=turn).score == 0.5
    # another rater is still blind
    other = client_for(Role.CURATOR)
    assert "judge's numbers are hidden" in other.get(url).content.decode()


def test_without_blind_mode_the_judge_is_shown_at_once(run, dialogue, client_for):
    run.blind_annotation = False
    run.save()
    turn = rated_turn(dialogue)
    page = client_for(Role.ANNOTATOR).get(turn_url := reverse("turn_judge_rating", args=[turn.pk])).content.decode()
    assert f"goal_c <strong>{turn.rating.goal_c:.2f}</strong>" in page and "numbers are hidden" not in page
    assert turn_url


def test_answers_are_optional_versioned_and_checked(run, dialogue, client_for):
    turn = rated_turn(dialogue)
    client = client_for(Role.ANNOTATOR)
    url = reverse("turn_judge_rating", args=[turn.pk])
    assert client.post(url, {"version": 0, "step1": "4"}, headers=HX).status_code == 200
    row = StepRatingAnnotation.objects.get(turn=turn)
    assert (row.step1, row.step2, row.version) == (4, None, 1)
    stale = client.post(url, {"version": 0, "step1": "9"}, headers=HX)
    assert stale.status_code == 409 and "since you opened" in stale.content.decode()
    assert StepRatingAnnotation.objects.get(turn=turn).step1 == 4
    bad = client.post(url, {"version": 1, "step5": "3"}, headers=HX)
    assert bad.status_code == 400 and "step5" in bad.content.decode()
    off_scale = client.post(url, {"version": 1, "relevance": "0.7"}, headers=HX)
    assert off_scale.status_code == 400 and "relevance" in off_scale.content.decode()
    assert not RelevanceAnnotation.objects.exists()
    # an unrated turn takes relevance, not the step-rating questions
    unrated = dialogue.turns.exclude(rating__isnull=False).order_by("index").first()
    refused = client.post(reverse("turn_judge_rating", args=[unrated.pk]), {"version": 0, "step1": "5"}, headers=HX)
    assert refused.status_code == 400 and "not rated" in refused.content.decode()


def test_who_may_rate(run, dialogue, client_for):
    turn = rated_turn(dialogue)
    viewer = client_for(Role.VIEWER)
    assert viewer.get(reverse("turn_judge_rating", args=[turn.pk])).status_code == 403
    assert viewer.get(reverse("dialogue_episode_rating", args=[dialogue.pk])).status_code == 403


def test_sotopia_eval_ratings_per_agent(dialogue, client_for):
    client = client_for(Role.ANNOTATOR)
    url = reverse("dialogue_episode_rating", args=[dialogue.pk])
    assert "SEC" in client.get(url).content.decode()
    client.post(url, {"version": 0, "speaker": 1, "GOAL": "7.5", "SEC": "-2", "FIN": ""})
    row = EpisodeAnnotation.objects.get(dialogue=dialogue, speaker=1)
    assert row.scores == {"GOAL": 7.5, "SEC": -2.0} and row.version == 1
    page = client.post(url, {"version": 1, "speaker": 1, "SEC": "3"}, follow=True).content.decode()
    assert "Not saved" in page and EpisodeAnnotation.objects.get(pk=row.pk).scores["SEC"] == -2.0


def test_the_dimensions_people_rate_are_the_judges():
    assert [(label, low, high) for label, low, high in EPISODE_DIMENSIONS] == [
        (d.label, d.low, d.high) for d in DIMENSIONS
    ]


def test_the_queue_keeps_every_final_rated_turn_and_stratifies_the_rest(run):
    curator = UserFactory(username="cur", role=Role.CURATOR)
    finished = run.dialogues.filter(status="finished")
    finals = {StepRating.objects.filter(dialogue=d).order_by("-turn__index").first().turn_id for d in finished}
    queue = calibration_queue_build(run=run, target=len(finals) + 4, people=2, seed=1, user=curator)
    turns = [item["turn"] for item in queue.items]
    assert finals <= set(turns) and len(turns) == len(set(turns))
    assert len(turns) == min(len(finals) + 4, StepRating.objects.filter(dialogue__in=finished).count())
    assert sum(c["drawn"] for c in queue.strata.values()) == len(turns)
    for item in queue.items:
        if not item["final"]:
            following = (
                finished.get(turns__id=item["turn"])
                .turns.filter(index=StepRating.objects.get(turn_id=item["turn"]).turn.index + 1)
                .first()
            )
            expected = {"forced": "termination"}.get(following.branch, following.branch) if following else "end"
            assert item["stratum"] == expected
    # the same seed draws the same queue
    again = calibration_queue_build(run=run, target=len(finals) + 4, people=2, seed=1, user=curator)
    assert again.items == queue.items


def test_the_queue_hands_each_person_the_next_item_until_it_has_its_people(run, client_for, make_user):
    curator = client_for(Role.CURATOR)
    drawn = curator.post(reverse("run_calibration_queue", args=[run.pk]), {"target": 3, "people": 1, "seed": 0})
    assert drawn.status_code == 302
    queue = run.calibration_queue
    first = queue.items[0]["turn"]
    ann = make_user(Role.ANNOTATOR, "ann")
    assert calibration_next(queue, ann).pk == first
    StepRatingAnnotation.objects.create(turn_id=first, dialogue_id=Dialogue.objects.get(turns__id=first).pk,
                                        annotator=ann, step1=5)  # fmt: skip
    bob = make_user(Role.ANNOTATOR, "bob")
    assert calibration_next(queue, bob).pk == queue.items[1]["turn"]  # the first has its one person
    page = curator.get(reverse("run_calibration_queue", args=[run.pk])).content.decode()
    assert "ann" in page and "final rating" in page
    annotator = client_for(Role.ANNOTATOR)
    assert annotator.post(reverse("run_calibration_queue", args=[run.pk]), {"target": 3, "people": 1, "seed": 0}
                          ).status_code == 403  # fmt: skip
    nxt = annotator.get(reverse("run_calibration_next", args=[run.pk]))
    assert nxt.status_code == 302 and f"?queue={run.pk}" in nxt.url
