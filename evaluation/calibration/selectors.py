"""Reads for the Calibration page: the judges' values and the people's on the same items, for one run or for the
runs that share a judge model and prompt set, with the statistics (stats.py) and the decision changes
(decisions.py) computed from them.

Three judges: the step-rating judge (items: rated turns; quantities goal_c, goal_p and step1..step5), the relevance
judge (items: actions; one calibration per judge model and prompt version) and the SOTOPIA-EVAL judge (items: an
agent in a dialogue; one calibration per dimension, evaluator, judge model and prompt version).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from dialogues.annotation.models import EPISODE_DIMENSIONS, EpisodeAnnotation, RelevanceAnnotation, StepRatingAnnotation
from dialogues.engine.config import Variant
from dialogues.runs.models import Branch, Dialogue, Run, StepRating, Turn
from dialogues.runs.selectors import dialogue_config
from evaluation.calibration.decisions import DecisionChanges, DialogueFacts, RatedTurn, decision_changes
from evaluation.calibration.stats import RESAMPLES, SEED, Calibration, calibrate
from evaluation.models import EpisodeScore, RelevanceScore

STEP_QUANTITIES = (
    ("goal_c", "goal_c", "current goal score, (step1 + step2) / 2"),
    ("goal_p", "goal_p", "predicted goal score, (step3 + step4) / 2"),
    ("step1", "step1", "agent 1's current goal score (0–10)"),
    ("step2", "step2", "agent 2's current goal score (0–10)"),
    ("step3", "step3", "agent 1's predicted goal score (0–10)"),
    ("step4", "step4", "agent 2's predicted goal score (0–10)"),
    ("step5", "step5", "go on (1) or end (0); the judge's value is the share of samples saying go on"),
)
DECIDING_BRANCHES = {Branch.NSC, Branch.SSI, Branch.NSI, "forced"}


@dataclass
class Row:
    key: str
    label: str
    help: str
    result: Calibration
    scatter: str = ""  # the figure's JSON
    figure_id: str = ""


@dataclass
class JudgeSection:
    judge: str  # "step rating", "relevance", "SOTOPIA-EVAL"
    version: str  # judge model and prompt version
    rows: list[Row] = field(default_factory=list)


@dataclass
class RunsCalibration:
    runs: list[Run]
    sections: list[JudgeSection]
    changes: DecisionChanges
    rated_by_people: int  # rated turns with at least one person's step answers
    resamples: int
    seed: int


def _judge_step_values(rating: StepRating) -> dict[str, float]:
    samples = [s["scores"] for s in rating.samples]
    values = {"goal_c": rating.goal_c, "goal_p": rating.goal_p}
    for step in ("step1", "step2", "step3", "step4", "step5"):
        values[step] = fmean(s[step] for s in samples) if samples else None
    return values


STEPS = ("step1", "step2", "step3", "step4", "step5")


def _human_step_values(scores: dict[str, int]) -> dict[str, float]:
    values: dict[str, float] = {step: float(v) for step, v in scores.items()}
    if scores.get("step1") is not None and scores.get("step2") is not None:
        values["goal_c"] = (scores["step1"] + scores["step2"]) / 2
    if scores.get("step3") is not None and scores.get("step4") is not None:
        values["goal_p"] = (scores["step3"] + scores["step4"]) / 2
    return values


IMPORTED = " (imported)"  # people named by an imported file: maybe not the accounts of the same names here


def _step_answers(dialogue_ids: Iterable[int]) -> dict[int, dict[str, dict[str, int]]]:
    """Per turn: each person's answered steps, from this instance and from imported files."""
    answers: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in StepRatingAnnotation.objects.filter(dialogue_id__in=dialogue_ids).select_related("annotator"):
        if row.scores():
            answers[row.turn_id][row.annotator.get_username()] = row.scores()
    for turn_id, imported in Turn.objects.filter(dialogue_id__in=dialogue_ids, dialogue__import_job__isnull=False
                                                 ).values_list("pk", "imported"):  # fmt: skip
        for entry in (imported or {}).get("judge_ratings", []):
            scores = {step: entry[step] for step in STEPS if entry.get(step) is not None}
            if scores:
                answers[turn_id][entry["annotator"] + IMPORTED] = scores
    return answers


def _decides(turns: list[Turn], rated_index: int, variant: Variant, forced: bool) -> bool:
    """Did the rating after `rated_index` choose what followed? Under DSI or Raw (no forced strategy), outside the
    negotiation workflow, when a model turn came next."""
    if variant not in (Variant.DSI, Variant.RAW) or forced:
        return False
    if any(t.branch == Branch.NSI and t.index <= rated_index for t in turns):
        return False
    following = next((t for t in turns if t.index == rated_index + 1), None)
    return following is not None and not following.human and following.branch in DECIDING_BRANCHES


def _step_judge(dialogue_ids: Iterable[int], resamples: int, seed: int) -> tuple[JudgeSection, DecisionChanges, int]:
    dialogue_ids = list(dialogue_ids)
    ratings = list(StepRating.objects.filter(dialogue_id__in=dialogue_ids).select_related("turn"))
    by_turn = _step_answers(dialogue_ids)
    judge: dict[str, dict[int, float]] = defaultdict(dict)
    people: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for rating in ratings:
        if rating.turn_id not in by_turn:
            continue
        for key, value in _judge_step_values(rating).items():
            if value is not None:
                judge[key][rating.turn_id] = value
        for name, scores in by_turn[rating.turn_id].items():
            for key, value in _human_step_values(scores).items():
                people[key][rating.turn_id][name] = value
    section = JudgeSection("step rating", "")
    for key, label, help_text in STEP_QUANTITIES:
        result = calibrate(judge.get(key, {}), people.get(key, {}), resamples=resamples, seed=seed)
        section.rows.append(Row(key, label, help_text, result))
    # the decisions, on the dialogues people rated
    rated = {r.dialogue_id for r in ratings if r.turn_id in by_turn}
    dialogues = {d.pk: d for d in Dialogue.objects.filter(pk__in=rated).select_related("run")}
    turns: dict[int, list[Turn]] = defaultdict(list)
    for turn in Turn.objects.filter(dialogue_id__in=rated).only("dialogue_id", "index", "branch", "human"):
        turns[turn.dialogue_id].append(turn)
    final = {}
    for rating in ratings:
        if rating.dialogue_id in rated:
            final[rating.dialogue_id] = max(final.get(rating.dialogue_id, -1), rating.turn.index)
    facts, rated_turns = {}, []
    for pk, dialogue in dialogues.items():
        config = dialogue_config(dialogue)
        facts[pk] = DialogueFacts(pk, config, dialogue.attempt, dialogue.nsi_used, dialogue.end_reason == "both_left")
    for rating in ratings:
        rows = by_turn.get(rating.turn_id)
        if not rows:
            continue
        config = facts[rating.dialogue_id].config
        rated_turns.append(
            RatedTurn(
                dialogue=rating.dialogue_id,
                index=rating.turn.index,
                judge_goal_c=rating.goal_c,
                judge_goal_p=rating.goal_p,
                judge_terminate=rating.terminate,
                people=tuple(rows.values()),
                decides=_decides(
                    turns[rating.dialogue_id], rating.turn.index, config.variant, bool(config.force_strategy)
                ),
                final=rating.turn.index == final[rating.dialogue_id],
            )
        )
    return section, decision_changes(rated_turns, facts), len(rated_turns)


def _relevance_judges(dialogue_ids: Iterable[int], resamples: int, seed: int) -> list[JudgeSection]:
    dialogue_ids = list(dialogue_ids)
    people: dict[int, dict[str, float]] = defaultdict(dict)
    for row in RelevanceAnnotation.objects.filter(dialogue_id__in=dialogue_ids).select_related("annotator"):
        people[row.turn_id][row.annotator.get_username()] = row.score
    for turn_id, imported in Turn.objects.filter(dialogue_id__in=dialogue_ids, dialogue__import_job__isnull=False
                                                 ).values_list("pk", "imported"):  # fmt: skip
        for entry in (imported or {}).get("judge_ratings", []):
            if entry.get("relevance") is not None:
                people[turn_id][entry["annotator"] + IMPORTED] = float(entry["relevance"])
    if not people:
        return []
    judged: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for turn_id, model, version, score in RelevanceScore.objects.filter(
        turn_id__in=people, score__isnull=False
    ).values_list("turn_id", "judge_model", "prompt_version", "score"):
        judged[(model, version)][turn_id] = score
    sections = []
    for (model, version), judge in sorted(judged.items()):
        result = calibrate(judge, people, resamples=resamples, seed=seed)
        row = Row("relevance", "S_rel score", "one action's relevance, −1 … 1", result)
        sections.append(JudgeSection("relevance", f"{model} · prompt {version}", [row]))
    return sections


def _episode_judges(dialogue_ids: Iterable[int], resamples: int, seed: int) -> list[JudgeSection]:
    people: dict[str, dict[tuple[int, int], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    dialogue_ids = list(dialogue_ids)
    for row in EpisodeAnnotation.objects.filter(dialogue_id__in=dialogue_ids).select_related("annotator"):
        for label, value in row.scores.items():
            people[label][(row.dialogue_id, row.speaker)][row.annotator.get_username()] = float(value)
    for pk, imported in Dialogue.objects.filter(pk__in=dialogue_ids, import_job__isnull=False).values_list(
        "pk", "imported"
    ):
        for entry in (imported or {}).get("episode_ratings", []):
            for label, value in entry["scores"].items():
                people[label][(pk, entry["speaker"])][entry["annotator"] + IMPORTED] = float(value)
    if not people:
        return []
    judged: dict[tuple[str, str, str], dict[str, dict[tuple[int, int], float]]] = defaultdict(lambda: defaultdict(dict))
    for score in EpisodeScore.objects.filter(dialogue_id__in=dialogue_ids, problem=""):
        for label, _low, _high in EPISODE_DIMENSIONS:
            value = score.value(label)
            if value is not None:
                judged[(score.evaluator, score.judge_model, score.prompt_version)][label][
                    (score.dialogue_id, score.speaker)
                ] = value
    sections = []
    for (evaluator, model, version), by_label in sorted(judged.items()):
        section = JudgeSection("SOTOPIA-EVAL", f"{model} · {evaluator} prompt {version}")
        for label, low, high in EPISODE_DIMENSIONS:
            if people.get(label):
                result = calibrate(by_label.get(label, {}), people[label], resamples=resamples, seed=seed)
                section.rows.append(Row(label, label, f"[{low}, {high}] per agent", result))
        sections.append(section)
    return sections


def runs_calibration(runs: list[Run], *, resamples: int = RESAMPLES, seed: int = SEED) -> RunsCalibration:
    """The judges against the people on these runs' dialogues."""
    dialogue_ids = list(Dialogue.objects.filter(run__in=runs).values_list("pk", flat=True))
    step, changes, rated = _step_judge(dialogue_ids, resamples, seed)
    models = sorted({run.model for run in runs})
    prompts = sorted({f"{run.prompt_set_name} ({run.prompt_set_version})" for run in runs})
    step.version = f"{', '.join(models)} · prompt set {', '.join(prompts)}"
    sections = [
        step,
        *_relevance_judges(dialogue_ids, resamples, seed),
        *_episode_judges(dialogue_ids, resamples, seed),
    ]
    return RunsCalibration(runs, sections, changes, rated, resamples, seed)


def calibration_groups() -> list[dict[str, Any]]:
    """Generation runs that people rated, grouped by the step-rating judge: the run's model and prompt set
    version (the step-rating judge is the expert model with the run's prompts)."""
    rated_runs = set(StepRatingAnnotation.objects.values_list("dialogue__run_id", flat=True).distinct())
    rated_runs |= set(RelevanceAnnotation.objects.values_list("dialogue__run_id", flat=True).distinct())
    rated_runs |= set(EpisodeAnnotation.objects.values_list("dialogue__run_id", flat=True).distinct())
    rated_runs |= set(
        Turn.objects.filter(dialogue__import_job__isnull=False, imported__has_key="judge_ratings")
        .exclude(imported__judge_ratings=[])
        .values_list("dialogue__run_id", flat=True)
        .distinct()
    )
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in Run.objects.filter(pk__in=rated_runs).order_by("id"):
        groups[(run.model, run.prompt_set_version)].append(run)
    return [
        {"model": m, "prompts": p, "names": sorted({r.prompt_set_name for r in runs}), "runs": runs}
        for (m, p), runs in sorted(groups.items())
    ]
