"""People rating what the judges rated (calibration): writes and reads for a person's answers to the step-rating
judge's questions on a rated turn, a relevance score per action, SOTOPIA-EVAL scores per agent per dialogue, and a
run's calibration queue. Saves are versioned as every annotation is (services._claim: a stale version is a
Conflict); blind mode hides the judge's numbers from a rater until they have saved their own answers on the turn.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count

from dialogues.annotation.models import (
    EPISODE_DIMENSIONS,
    RELEVANCE_SCALE,
    CalibrationQueue,
    EpisodeAnnotation,
    RelevanceAnnotation,
    StepRatingAnnotation,
)
from dialogues.annotation.services import ELSEWHERE, _claim
from dialogues.runs.models import Dialogue, DialogueStatus, Run, StepRating, Turn

STEP_RANGES = {"step1": 10, "step2": 10, "step3": 10, "step4": 10, "step5": 1}
STRATA = ("NSC", "SSI", "NSI", "termination", "end")  # what followed a rated turn ("end": nothing did)

# --- writes -----------------------------------------------------------------------------------------------


def step_rating_save(
    *, turn_id: int, annotator: Any, scores: dict[str, int | None], version: int
) -> StepRatingAnnotation:
    """Save a person's answers to the step-rating judge's questions on a rated turn (any of step1..step5)."""
    turn = Turn.objects.select_related("dialogue").get(pk=turn_id)
    if not StepRating.objects.filter(turn=turn).exists():
        raise ValueError(f"turn {turn.index} was not rated by the step-rating judge")
    unknown = set(scores) - set(STEP_RANGES)
    if unknown:
        raise ValueError(f"unknown step {sorted(unknown)[0]!r}")
    for step, value in scores.items():
        if value is not None and not 0 <= value <= STEP_RANGES[step]:
            raise ValueError(f"{step} is 0 to {STEP_RANGES[step]}")
    with transaction.atomic():
        row = _claim(
            StepRatingAnnotation,
            version,
            removed="these answers were removed since you opened them",
            raced=f"you saved answers on this turn {ELSEWHERE} first",
            stale=f"you saved these answers {ELSEWHERE} since you opened them here",
            create={"dialogue": turn.dialogue},
            turn=turn,
            annotator=annotator,
        )
        for step in STEP_RANGES:
            setattr(row, step, scores.get(step))
        row.save()
    return row


def relevance_save(*, turn_id: int, annotator: Any, score: float, version: int) -> RelevanceAnnotation:
    """Save a person's relevance score of one action, on S_rel's scale."""
    if score not in RELEVANCE_SCALE:
        raise ValueError("relevance is one of −1, −0.5, 0, 0.5, 1")
    turn = Turn.objects.select_related("dialogue").get(pk=turn_id)
    with transaction.atomic():
        row = _claim(
            RelevanceAnnotation,
            version,
            removed="this score was removed since you opened it",
            raced=f"you scored this action {ELSEWHERE} first",
            stale=f"you changed this score {ELSEWHERE} since you opened it here",
            create={"dialogue": turn.dialogue, "score": score},
            turn=turn,
            annotator=annotator,
        )
        row.score = score
        row.save()
    return row


def episode_rating_save(
    *, dialogue_id: int, speaker: int, annotator: Any, scores: dict[str, float | None], version: int
) -> EpisodeAnnotation:
    """Save a person's SOTOPIA-EVAL scores of one agent in one dialogue (any of the seven dimensions)."""
    if speaker not in (0, 1):
        raise ValueError("the agent is 1 or 2")
    ranges = {label: (low, high) for label, low, high in EPISODE_DIMENSIONS}
    kept = {}
    for label, value in scores.items():
        if label not in ranges:
            raise ValueError(f"unknown dimension {label!r}")
        if value is None:
            continue
        low, high = ranges[label]
        if not low <= value <= high:
            raise ValueError(f"{label} is {low} to {high}")
        kept[label] = value
    dialogue = Dialogue.objects.get(pk=dialogue_id)
    with transaction.atomic():
        row = _claim(
            EpisodeAnnotation,
            version,
            removed="these scores were removed since you opened them",
            raced=f"you scored this agent {ELSEWHERE} first",
            stale=f"you changed these scores {ELSEWHERE} since you opened them here",
            create={},
            dialogue=dialogue,
            speaker=speaker,
            annotator=annotator,
        )
        row.scores = kept
        row.save()
    return row


# --- reads ------------------------------------------------------------------------------------------------


def sees_judge(turn: Turn, user: Any, mine: StepRatingAnnotation | None) -> bool:
    """Blind mode: a rater sees the judge's numbers on a turn only after saving their own answers there."""
    return not turn.dialogue.run.blind_annotation or mine is not None


@dataclass
class RatingPanel:
    turn: Turn
    rating: StepRating | None
    mine: StepRatingAnnotation | None
    relevance: RelevanceAnnotation | None
    shows_judge: bool
    others: int  # other people's answers on this turn (never shown here)


def rating_panel(turn: Turn, user: Any) -> RatingPanel:
    rating = StepRating.objects.filter(turn=turn).first()
    mine = StepRatingAnnotation.objects.filter(turn=turn, annotator=user).first()
    return RatingPanel(
        turn=turn,
        rating=rating,
        mine=mine,
        relevance=RelevanceAnnotation.objects.filter(turn=turn, annotator=user).first(),
        shows_judge=rating is not None and sees_judge(turn, user, mine),
        others=StepRatingAnnotation.objects.filter(turn=turn).exclude(annotator=user).count(),
    )


def episode_panel(dialogue: Dialogue, user: Any) -> dict[int, EpisodeAnnotation | None]:
    rows = {r.speaker: r for r in EpisodeAnnotation.objects.filter(dialogue=dialogue, annotator=user)}
    return {0: rows.get(0), 1: rows.get(1)}


# --- the calibration queue --------------------------------------------------------------------------------


def _strata(run: Run) -> tuple[dict[str, list[int]], list[int]]:
    """The rated turns of a run's finished dialogues by what followed them, and each dialogue's final rated
    turn."""
    rated = list(
        StepRating.objects.filter(dialogue__run=run, dialogue__status=DialogueStatus.FINISHED)
        .order_by("dialogue_id", "turn__index")
        .values_list("dialogue_id", "turn_id", "turn__index")
    )
    branches = {
        (d, i): b
        for d, i, b in Turn.objects.filter(dialogue__run=run, dialogue__status=DialogueStatus.FINISHED).values_list(
            "dialogue_id", "index", "branch"
        )
    }
    last: dict[int, int] = {}
    strata: dict[str, list[int]] = defaultdict(list)
    for dialogue_id, turn_id, index in rated:
        last[dialogue_id] = turn_id
        following = branches.get((dialogue_id, index + 1))
        stratum = {"forced": "termination", None: "end"}.get(following, following)
        if stratum in STRATA:
            strata[stratum].append(turn_id)
    return strata, list(last.values())


def calibration_queue_build(*, run: Run, target: int, people: int, seed: int, user: Any) -> CalibrationQueue:
    """Draw the run's calibration queue: every dialogue's final rated turn (the filter's input), then the other
    rated turns stratified by the strategy that followed them (NSC / SSI / NSI / termination), taken in turn from
    each stratum (shuffled with `seed`) until `target` turns are in. Drawing again replaces the queue; answers
    already given stay."""
    if target < 1 or not 1 <= people <= 20:
        raise ValueError("the target is at least 1 turn, and 1 to 20 people rate each")
    strata, finals = _strata(run)
    stratum_of = {turn: name for name, turns in strata.items() for turn in turns}
    rng = random.Random(seed)
    items = [{"turn": t, "stratum": stratum_of.get(t, "end"), "final": True} for t in finals]
    chosen = set(finals)
    pools = {}
    for name in STRATA:
        pool = [t for t in strata.get(name, []) if t not in chosen]
        rng.shuffle(pool)
        pools[name] = pool
    while len(items) < target and any(pools.values()):
        for name in STRATA:
            if pools[name] and len(items) < target:
                turn = pools[name].pop()
                items.append({"turn": turn, "stratum": name, "final": False})
    counts = {name: {"rated": len(strata.get(name, [])), "drawn": sum(1 for i in items if i["stratum"] == name)}
              for name in STRATA}  # fmt: skip
    queue, _ = CalibrationQueue.objects.update_or_create(
        run=run,
        defaults={"target": target, "people": people, "seed": seed, "items": items, "strata": counts,
                  "created_by": user},
    )  # fmt: skip
    return queue


def queue_progress(queue: CalibrationQueue) -> dict[str, Any]:
    """Items with enough people, and each person's count of answered items."""
    turns = [item["turn"] for item in queue.items]
    answered = StepRatingAnnotation.objects.filter(turn_id__in=turns)
    per_turn = dict(answered.values_list("turn_id").annotate(n=Count("id")).order_by())
    per_person = list(
        answered.values_list("annotator__username").annotate(n=Count("id")).order_by("annotator__username")
    )
    complete = sum(1 for t in turns if per_turn.get(t, 0) >= queue.people)
    return {"items": len(turns), "complete": complete, "people": per_person}


def calibration_next(queue: CalibrationQueue, user: Any) -> Turn | None:
    """The next item for `user`: the first turn of the queue they have not answered that still lacks people."""
    turns = [item["turn"] for item in queue.items]
    done = set(StepRatingAnnotation.objects.filter(turn_id__in=turns, annotator=user).values_list("turn_id", flat=True))
    counts = dict(
        StepRatingAnnotation.objects.filter(turn_id__in=turns).values_list("turn_id").annotate(n=Count("id")).order_by()
    )
    for turn_id in turns:
        if turn_id not in done and counts.get(turn_id, 0) < queue.people:
            return Turn.objects.select_related("dialogue__run").get(pk=turn_id)
    return None
