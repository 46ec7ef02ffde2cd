"""The dialogues of an export, read in chunks with a fixed number of queries per chunk, as plain data the formats
write from. Memory holds one chunk at a time however large the corpus.

Corrections: annotators propose corrected texts; the export applies a **curator's** correction (the latest one a
user with the curate capability saved for that turn). Every format sees both the original and the applied text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from dialogues.annotation.models import (
    Adjudication,
    DialogueAnnotation,
    EpisodeAnnotation,
    RelevanceAnnotation,
    StepRatingAnnotation,
    TurnAnnotation,
)
from dialogues.engine.actions import Action, ActionType
from dialogues.engine.config import RunConfig
from dialogues.engine.prompts import PromptSet, builtin
from dialogues.engine.state import DialogueState
from dialogues.engine.state import Turn as EngineTurn
from dialogues.engine.stepper import agent_prompt
from dialogues.engine.strategy import Branch as EngineBranch
from dialogues.library.models import Task
from dialogues.library.selectors import task_spec
from dialogues.prompt_sets.services import prompt_set_recorded
from dialogues.runs.keys import dialogue_key, run_key
from dialogues.runs.models import Dialogue, LLMCall, StepRating, Turn
from omega_web.roles import ROLE_ORDER, Capability, role_capabilities

CHUNK = 200
# The key order of what a person decided, as this instance writes it. What came from elsewhere is stored as JSON,
# and PostgreSQL's jsonb keeps no key order: records made elsewhere are written back in this order too, so an
# exported file is the same byte for byte whatever the database.
ANNOTATION_KEYS = ("annotator", "labels", "quality", "note", "corrected_text", "correction_reason")
DECISION_KEYS = ("annotator", "decision", "note", "submitted_at")
JUDGE_RATING_KEYS = ("annotator", "step1", "step2", "step3", "step4", "step5", "relevance", "rated_at")
EPISODE_RATING_KEYS = ("annotator", "speaker", "scores", "rated_at")
ADJUDICATION_KEYS = ("curator", "decision", "note", "decided_at")


def canonical(value: Any) -> Any:
    """A JSON value read from the database with every object's keys sorted: PostgreSQL's jsonb and SQLite's JSON keep
    different key orders, and an export must be the same byte for byte whichever the database."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def in_order(record: Any, keys: tuple[str, ...]) -> Any:
    """A record made elsewhere with its known keys in `keys` order, then any others sorted."""
    if not isinstance(record, dict):
        return record
    return {**{k: record[k] for k in keys if k in record}, **{k: record[k] for k in sorted(record) if k not in keys}}


@dataclass
class TurnData:
    index: int
    speaker: int
    action_type: str
    argument: str  # as generated (or typed)
    corrected: str | None  # the curator's correction applied in exports, if any
    correction_reason: str
    branch: str
    forced: bool
    reason: str
    nsi_step: str
    proposal: str
    draft: str
    own_utility: Any
    other_utility: Any
    human: bool
    rating: dict[str, Any] | None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    judge_ratings: list[dict[str, Any]] = field(default_factory=list)  # people's answers to the judges' questions
    extra: dict[str, Any] | None = None  # imported turns: the source record's fields no format knows
    pk: int | None = None  # the Turn row (evaluation stores per-turn results)

    @property
    def text(self) -> str:
        """The text exports use: the correction when there is one."""
        return self.corrected if self.corrected is not None else self.argument

    def action(self) -> Action:
        """The action as exports use it (corrected)."""
        return Action(ActionType(self.action_type), self.text)


@dataclass
class DialogueData:
    id: int
    key: str  # the name that stays the same across instances (dialogues/keys.py)
    run: dict[str, Any]
    task: dict[str, Any]
    spec: Any  # engine TaskSpec
    attempt: int
    seed: int
    kept: bool
    filter_passed: bool | None
    filter_note: str
    final_goal_c: float | None
    final_goal_p: float | None
    end_reason: str
    simulated: bool
    nsi_used: bool
    turns: list[TurnData]
    decisions: list[dict[str, Any]]
    adjudication: dict[str, Any] | None
    calls: list[dict[str, Any]] | None = None
    source: dict[str, Any] | None = None  # imported dialogues: where they came from
    prompt_set: PromptSet = field(default_factory=builtin)  # the templates its prompts were rendered from
    episode_ratings: list[dict[str, Any]] = field(default_factory=list)  # people's SOTOPIA-EVAL scores

    def state(self, upto: int | None = None) -> DialogueState:
        """The engine's state with the turns before `upto` (all by default), corrections applied."""
        turns = tuple(
            EngineTurn(t.index, t.speaker, t.action(), EngineBranch(t.branch))
            for t in self.turns
            if upto is None or t.index < upto
        )
        return DialogueState(task=self.spec, config=RunConfig(), turns=turns, prompts=self.prompt_set)

    def prompt(self, index: int) -> str:
        """The plain agent prompt (paper A.4.2) exactly as the speaker of turn `index` saw it (earlier
        corrections applied)."""
        return agent_prompt(self.state(index), self.turns[index].speaker, index)


class _PromptSets:
    """The prompt sets of the dialogues read, each looked up once."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], PromptSet] = {}

    def get(self, chosen: dict[str, str]) -> PromptSet:
        key = (chosen["name"], chosen["version"])
        if key not in self.found:
            self.found[key] = prompt_set_recorded(*key)
        return self.found[key]


def curator_ids() -> set[int]:
    roles = [role.value for role in ROLE_ORDER if Capability.CURATE in role_capabilities(role)]
    users = get_user_model().objects.filter(Q(groups__name__in=roles) | Q(is_superuser=True), is_active=True)
    return set(users.values_list("pk", flat=True))


def dialogues(ids: list[int], *, calls: bool = False, annotations: bool = True) -> Iterator[DialogueData]:
    """The dialogues `ids`, in that order, a chunk at a time."""
    curators = curator_ids()
    specs: dict[int, tuple[Any, dict[str, Any]]] = {}
    sets = _PromptSets()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = {d.pk: d for d in Dialogue.objects.filter(pk__in=chunk).select_related("run")}
        task_ids = {d.task_id for d in rows.values()} - set(specs)
        for task in Task.objects.filter(pk__in=task_ids).select_related("scenario", "agent1", "agent2"):
            specs[task.pk] = (task_spec(task), task_facts(task))
        turns: dict[int, list[Turn]] = defaultdict(list)
        for turn in Turn.objects.filter(dialogue_id__in=chunk).order_by("dialogue_id", "index"):
            turns[turn.dialogue_id].append(turn)
        ratings = {
            r.turn_id: r for r in StepRating.objects.filter(dialogue_id__in=chunk).only(
                "turn_id", "samples", "rejected", "requested", "valid", "goal_c", "goal_p", "terminate", "closing"
            )
        }  # fmt: skip
        marks: dict[int, list[TurnAnnotation]] = defaultdict(list)
        corrections: dict[int, TurnAnnotation] = {}
        for a in (
            TurnAnnotation.objects.filter(dialogue_id__in=chunk)
            .select_related("annotator")
            .prefetch_related("labels")
            .order_by("updated_at", "id")
        ):
            marks[a.turn_id].append(a)
            if a.corrected_text and a.annotator_id in curators:
                corrections[a.turn_id] = a  # the latest curator correction wins
        judged = _judge_ratings(chunk) if annotations else {}
        episodes = _episode_ratings(chunk) if annotations else {}
        decisions: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for d in DialogueAnnotation.objects.filter(dialogue_id__in=chunk).select_related("annotator").order_by("id"):
            decisions[d.dialogue_id].append(
                {
                    "annotator": d.annotator.get_username(),
                    "decision": d.decision,
                    "note": d.note,
                    "submitted_at": d.submitted_at.isoformat() if d.submitted_at else None,
                }
            )
        adjudications = {
            a.dialogue_id: {
                "curator": a.curator.get_username() if a.curator else None,
                "decision": a.decision,
                "note": a.note,
                "decided_at": a.decided_at.isoformat(),
            }
            for a in Adjudication.objects.filter(dialogue_id__in=chunk).select_related("curator")
        }
        llm: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if calls:
            for call in LLMCall.objects.filter(dialogue_id__in=chunk).order_by("dialogue_id", "id"):
                llm[call.dialogue_id].append(_call(call))
        for pk in chunk:
            d = rows.get(pk)
            if d is None:
                continue
            spec, facts = specs[d.task_id]
            imported = d.imported or {}
            chosen = (d.changes or {}).get("prompt_set") or {
                "name": d.run.prompt_set_name, "version": d.run.prompt_set_version
            }  # fmt: skip
            yield DialogueData(
                id=d.pk,
                key=dialogue_key(d),
                run={
                    "id": d.run_id,
                    "key": run_key(d.run),
                    "name": d.run.name,
                    "variant": d.run.variant,
                    "model": (d.changes or {}).get("model") or d.run.model,
                    "prompt_set_version": d.run.prompt_set_version,
                    "prompt_set": {"name": chosen["name"], "version": chosen["version"]},
                    "simulated": d.run.simulated,
                },
                task=facts,
                spec=spec,
                attempt=d.attempt,
                seed=d.seed,
                kept=d.kept,
                filter_passed=d.filter_passed,
                filter_note=d.filter_note,
                final_goal_c=d.final_goal_c,
                final_goal_p=d.final_goal_p,
                end_reason=d.end_reason,
                simulated=d.simulated,
                nsi_used=d.nsi_used,
                turns=[
                    _turn(
                        t,
                        ratings.get(t.pk),
                        corrections.get(t.pk),
                        marks.get(t.pk, []),
                        annotations,
                        judged.get(t.pk, []),
                    )
                    for t in turns[pk]
                ],
                decisions=[*(in_order(x, DECISION_KEYS) for x in imported.get("decisions", [])), *decisions.get(pk, [])]
                if annotations
                else [],
                adjudication=adjudications.get(pk, in_order(imported.get("adjudication"), ADJUDICATION_KEYS)),
                calls=llm.get(pk, []) if calls else None,
                source=canonical(imported.get("source")),
                prompt_set=builtin() if d.run.is_imported else sets.get(chosen),
                episode_ratings=[
                    *(in_order(x, EPISODE_RATING_KEYS) for x in imported.get("episode_ratings", [])),
                    *episodes.get(pk, []),
                ]
                if annotations
                else [],
            )


AGENT_FIELDS = (
    "external_id", "first_name", "last_name", "age", "occupation", "gender", "gender_pronoun", "public_info",
    "big_five", "moral_values", "schwartz_personal_values", "personality_and_values", "decision_making_style",
    "secret", "mbti", "source", "partial",
)  # fmt: skip
SCENARIO_FIELDS = (
    "external_id", "codename", "source", "text", "agent1_goal", "agent2_goal", "relationship", "age_constraint",
    "occupation_constraint", "agent_constraint", "partial",
)  # fmt: skip


def task_facts(task: Task) -> dict[str, Any]:
    """What exports say of a task: the facts formats use, and the complete scenario and agent profiles (SOTOPIA's
    field names) so that the task can be rebuilt from an export alone."""
    return {
        "external_id": task.external_id,
        "codename": task.scenario.codename,
        "split": task.split,
        "hard": task.hard,
        "source": task.source,
        "contexts": task.contexts,
        "scenario": task.scenario.text,
        "relationship": task.scenario.relationship,
        "agents": [
            {"external_id": a.external_id, "name": a.full_name, "goal": goal}
            for a, goal in ((task.agent1, task.scenario.agent1_goal), (task.agent2, task.scenario.agent2_goal))
        ],
        "profiles": {
            "scenario": {name: getattr(task.scenario, name) for name in SCENARIO_FIELDS},
            "agents": [{name: getattr(a, name) for name in AGENT_FIELDS} for a in (task.agent1, task.agent2)],
        },
    }


def _turn(
    turn: Turn,
    rating: StepRating | None,
    correction: TurnAnnotation | None,
    marks: list,
    with_marks: bool,
    judged: list[dict[str, Any]] = (),
) -> TurnData:
    """A turn as exports see it. An imported turn brings the annotations and the correction made where it came
    from; this instance's annotations follow them, and a curator's correction here wins over the imported one."""
    imported = turn.imported or {}
    if correction is not None:
        corrected, reason = correction.corrected_text, correction.correction_reason
    else:
        corrected, reason = imported.get("corrected"), imported.get("correction_reason", "")
    return TurnData(
        index=turn.index,
        speaker=turn.speaker,
        action_type=turn.action_type,
        argument=turn.argument,
        corrected=corrected,
        correction_reason=reason,
        branch=turn.branch,
        forced=turn.forced,
        reason=turn.reason,
        nsi_step=turn.nsi_step,
        proposal=turn.proposal,
        draft=turn.draft,
        own_utility=canonical(turn.own_utility),
        other_utility=canonical(turn.other_utility),
        human=turn.human,
        rating=None
        if rating is None
        else {
            "goal_c": rating.goal_c,
            "goal_p": rating.goal_p,
            "terminate": rating.terminate,
            "valid": rating.valid,
            "requested": rating.requested,
            "closing": rating.closing,
            "samples": canonical(rating.samples),
            "rejected": canonical(rating.rejected),
        },
        extra=canonical(imported.get("extra")),
        pk=turn.pk,
        annotations=[
            *(in_order(a, ANNOTATION_KEYS) for a in imported.get("annotations", [])),
            *(
                {
                    "annotator": m.annotator.get_username(),
                    "labels": sorted(label.name for label in m.labels.all()),
                    "quality": m.quality,
                    "note": m.note,
                    "corrected_text": m.corrected_text,
                    "correction_reason": m.correction_reason,
                }
                for m in marks
            ),
        ]
        if with_marks
        else [],
        judge_ratings=[*(in_order(a, JUDGE_RATING_KEYS) for a in imported.get("judge_ratings", [])), *judged]
        if with_marks
        else [],
    )


def _judge_ratings(dialogue_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Per turn, each person's answers to the step-rating judge's questions and their relevance score, merged
    per person (in the order of their names)."""
    by: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in StepRatingAnnotation.objects.filter(dialogue_id__in=dialogue_ids).select_related("annotator"):
        entry = by[row.turn_id].setdefault(row.annotator.get_username(), _empty_judge_rating(row.annotator))
        entry.update({step: getattr(row, step) for step in ("step1", "step2", "step3", "step4", "step5")})
        entry["rated_at"] = max(entry["rated_at"] or "", row.updated_at.isoformat())
    for row in RelevanceAnnotation.objects.filter(dialogue_id__in=dialogue_ids).select_related("annotator"):
        entry = by[row.turn_id].setdefault(row.annotator.get_username(), _empty_judge_rating(row.annotator))
        entry["relevance"] = row.score
        entry["rated_at"] = max(entry["rated_at"] or "", row.updated_at.isoformat())
    return {turn: [people[name] for name in sorted(people)] for turn, people in by.items()}


def _empty_judge_rating(annotator: Any) -> dict[str, Any]:
    return dict.fromkeys(JUDGE_RATING_KEYS) | {"annotator": annotator.get_username()}


def _episode_ratings(dialogue_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    by: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = EpisodeAnnotation.objects.filter(dialogue_id__in=dialogue_ids).select_related("annotator")
    for row in sorted(rows, key=lambda r: (r.dialogue_id, r.annotator.get_username(), r.speaker)):
        by[row.dialogue_id].append(
            {"annotator": row.annotator.get_username(), "speaker": row.speaker,
             "scores": {k: row.scores[k] for k in sorted(row.scores)}, "rated_at": row.updated_at.isoformat()}
        )  # fmt: skip
    return by


def _call(call: LLMCall) -> dict[str, Any]:
    return {
        "turn_index": call.turn_index,
        "purpose": call.purpose,
        "messages": canonical(call.messages),
        "params": canonical(call.params),
        "responses": canonical(call.responses),
        "finish_reasons": list(call.finish_reasons),
        "parsed": canonical(call.parsed),
        "error": call.error,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "cached_tokens": call.cached_tokens,  # as the server reported them; null when it did not (ADR 0028)
        "model": call.model,
    }
