"""Reads for the dialogue and run pages: a dialogue turn by turn with every decision (turn views, their cached
fragments, the rating chart), what its stepping buttons may do, whether it waits for a person, and runs as cards
with their progress and times. Everything here is prepared for templates; templates only lay it out (and escape
it). The dialogue list is in dialogue_list.py, forks in forks.py."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.core.cache import caches
from django.core.paginator import Page, Paginator
from django.db.models import Max, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from dialogues.engine.actions import ActionType
from dialogues.engine.branches import Branch
from dialogues.engine.plan import MoveKind, plan
from dialogues.engine.rating import STEP_MEANINGS, rating_rules_text
from dialogues.engine.stepper import HUMAN_TEXT_LIMIT
from dialogues.engine.utility import utility_changes
from dialogues.inspection.charts import rating_chart
from dialogues.runs.models import Dialogue, DialogueStatus, LLMCall, Run, RunStatus, Turn
from dialogues.runs.selectors import dialogue_config, dialogue_state, runs_progress

BRANCH_LABELS = {Branch.IMPORTED.value: "imported"}  # the turn list shows every other branch by its value
NSI_STEP_LABELS = {
    "resource_assessment": "resource assessment",
    "assessment_of_difference": "assessment of difference",
    "initial_proposal": "initial proposal",
    "update_proposal": "update proposal",
    "exit_confirm": "exit confirm",
}
PROPOSAL_LABELS = {"present_proposal": "present", "revise_proposal": "revise", "confirm_proposal": "confirm"}
STEP_NAMES = STEP_MEANINGS


@dataclass
class CallRow:
    id: int
    purpose: str
    tokens: int
    latency_ms: float
    error: str
    requests: int
    transport_retries: int


@dataclass
class TurnView:
    """A turn as the page shows it. The derived parts (rating table, utility changes, the word diff) are computed
    only when a template asks, that is only when the turn's fragment is not in the cache."""

    turn: Turn
    speaker_name: str
    calls: list[CallRow] = field(default_factory=list)
    before: Turn | None = None  # this speaker's previous turn with utilities

    @property
    def index(self) -> int:
        return self.turn.index

    @cached_property
    def stored_rating(self) -> Any:
        try:
            return self.turn.rating
        except Turn.rating.RelatedObjectDoesNotExist:
            return None

    @cached_property
    def rating(self) -> dict[str, Any] | None:
        return rating_view(self.stored_rating) if self.stored_rating is not None else None

    @cached_property
    def own_changes(self) -> list[dict[str, Any]]:
        if not self.turn.own_utility:
            return []
        return utility_changes(self.before.own_utility if self.before else None, self.turn.own_utility)

    @cached_property
    def other_changes(self) -> list[dict[str, Any]]:
        if not self.turn.other_utility:
            return []
        return utility_changes(self.before.other_utility if self.before else None, self.turn.other_utility)

    @cached_property
    def _diff(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return word_diff(self.turn.draft, self.turn.argument) if self.turn.draft else ([], [])

    @property
    def draft_diff(self) -> list[tuple[str, str]]:
        return self._diff[0]

    @property
    def styled_diff(self) -> list[tuple[str, str]]:
        return self._diff[1]

    @property
    def badge(self) -> str:
        t = self.turn
        if t.action_type == "leave" and t.forced:
            return "forced leave"
        label = BRANCH_LABELS.get(t.branch, t.branch)
        if t.nsi_step:
            label += f" · {NSI_STEP_LABELS.get(t.nsi_step, t.nsi_step)}"
        if t.proposal:
            label += f" · {PROPOSAL_LABELS.get(t.proposal, t.proposal)}"
        return label

    @property
    def own_json(self) -> str:
        return json.dumps(self.turn.own_utility, indent=1, ensure_ascii=False) if self.turn.own_utility else ""

    @property
    def other_json(self) -> str:
        return json.dumps(self.turn.other_utility, indent=1, ensure_ascii=False) if self.turn.other_utility else ""

    def fingerprint(self) -> str:
        """Everything the turn's fragment is drawn from, hashed: the cache key. A changed turn, a rating that
        arrived later, one more LLM call or a renamed character all give a new key, so nothing stale is shown."""
        t, r = self.turn, self.stored_rating
        parts = (
            t.pk, t.dialogue_id, t.index, t.speaker, t.action_type, t.argument, t.forced, t.branch, t.reason,
            t.nsi_step, t.proposal, t.draft, t.own_utility, t.other_utility, t.human, self.speaker_name,
            t.inherited, t.author.get_username() if t.author_id else None, t.dialogue.parent_id, t.imported,
            self.before.pk if self.before else None,
            _rating_facts(r),
            [(c.id, c.tokens, c.error) for c in self.calls],
        )  # fmt: skip
        return _digest(parts)


def _rating_facts(r: Any) -> list[Any] | None:
    return [r.pk, r.goal_c, r.goal_p, r.valid, r.requested, r.terminate, r.closing] if r is not None else None


def _digest(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, default=str).encode(), digest_size=16).hexdigest()


FRAGMENTS_VERSION = "3"  # raise when _turn.html or the chart changes shape (the cache is per process anyway)


def rendered_turns(dialogue: Dialogue, views: list[TurnView]) -> list[str]:
    """Each turn's fragment (the `_turn.html` list item), from the fragment cache when the turn is unchanged.

    Turns are written once and read many times, by every open page and every live update of them."""
    cache = caches["fragments"]
    keys = {f"turn:{FRAGMENTS_VERSION}:{view.fingerprint()}": view for view in views}
    found = cache.get_many(list(keys))
    fresh = {
        key: render_to_string("inspection/_turn.html", {"view": view, "dialogue": dialogue, "oob": False})
        for key, view in keys.items()
        if key not in found
    }
    if fresh:
        cache.set_many(fresh)
    return [found.get(key) or fresh[key] for key in keys]  # SafeStrings from the template, cached as such


def word_diff(before: str, after: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Word-level segments of two texts: ("same", text) or ("del", text) for the first, ("same" | "ins") for the
    second. Templates wrap the changed ones in <mark>; the text itself stays escaped."""
    a, b = re.findall(r"\S+\s*", before), re.findall(r"\S+\s*", after)
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            left.append(("same", "".join(a[i1:i2])))
            right.append(("same", "".join(b[j1:j2])))
            continue
        if i2 > i1:
            left.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            right.append(("ins", "".join(b[j1:j2])))
    return left, right


def rating_view(rating: Any) -> dict[str, Any]:
    samples = []
    for sample in rating.samples:
        samples.append(
            {
                "goal_c": sample["goal_c"],
                "goal_p": sample["goal_p"],
                "votes_to_end": sample["votes_to_end"],
                "steps": [
                    (name, STEP_NAMES[name], sample["scores"][name], sample["analyses"].get(name, ""))
                    for name in STEP_NAMES
                ],
            }
        )
    return {
        "goal_c": rating.goal_c,
        "goal_p": rating.goal_p,
        "valid": rating.valid,
        "requested": rating.requested,
        "returned": rating.returned,
        "terminate": rating.terminate,
        "closing": rating.closing,
        "votes_to_end": sum(1 for s in rating.samples if s["votes_to_end"]),
        "samples": samples,
        "rejected": rating.rejected,
        "rules": rating_rules_text(),  # the help text, written from the rating code's own definitions
    }


def turn_views(dialogue: Dialogue, *, after: int = -1, only: int | None = None) -> list[TurnView]:
    """The dialogue's turns (those after `after`, or just `only`) with everything the page shows."""
    turns = Turn.objects.filter(dialogue=dialogue).select_related("rating", "author").order_by("index")
    calls = (
        LLMCall.objects.filter(dialogue=dialogue)
        .only(
            "id",
            "turn_index",
            "purpose",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "error",
            "requests",
            "transport_retries",
        )
        .order_by("id")
    )
    names = [dialogue.task.agent1.full_name, dialogue.task.agent2.full_name]
    calls_by_turn: dict[int, list[CallRow]] = {}
    for call in calls:
        calls_by_turn.setdefault(call.turn_index, []).append(
            CallRow(
                call.id,
                call.purpose,
                call.prompt_tokens + call.completion_tokens,
                call.latency_ms,
                call.error,
                call.requests,
                call.transport_retries,
            )
        )
    views: list[TurnView] = []
    previous: dict[int, Turn] = {}  # each speaker's previous turn with utilities
    for turn in turns:
        turn.dialogue = dialogue  # the fragment reads the dialogue (a fork's parent), never queried per turn
        view = TurnView(turn, names[turn.speaker], calls_by_turn.get(turn.index, []), previous.get(turn.speaker))
        if turn.own_utility or turn.other_utility:
            previous[turn.speaker] = turn
        if (only is None and turn.index > after) or turn.index == only:
            views.append(view)
    return views


def dialogue_get(pk: int) -> Dialogue:
    return Dialogue.objects.select_related("run", "task__scenario", "task__agent1", "task__agent2").get(pk=pk)


def attempts_of(dialogue: Dialogue) -> QuerySet[Dialogue]:
    return (
        Dialogue.objects.filter(run_id=dialogue.run_id, task_id=dialogue.task_id)
        .order_by("attempt")
        .only("id", "attempt", "status", "filter_passed", "kept", "final_goal_c")
    )


def stepping(dialogue: Dialogue) -> dict[str, Any]:
    """What the stepping buttons may do now, and why not."""
    live = dialogue.lease_until is not None and dialogue.lease_until >= timezone.now()
    open_ = dialogue.status in (DialogueStatus.PENDING, DialogueStatus.PAUSED) or (
        dialogue.status == DialogueStatus.RUNNING and not live
    )
    running = dialogue.status == DialogueStatus.RUNNING and live
    run_open = dialogue.run.status in (RunStatus.RUNNING, RunStatus.PAUSED)
    return {
        "can_step": open_ and run_open,
        "can_run": dialogue.status in (DialogueStatus.PAUSED, DialogueStatus.PENDING) and run_open,
        "can_pause": dialogue.status in (DialogueStatus.PENDING, DialogueStatus.RUNNING),
        "running": running,
        "done": dialogue.status in (DialogueStatus.FINISHED, DialogueStatus.FAILED, DialogueStatus.CANCELLED),
    }


def waiting_for_person(dialogue: Dialogue) -> str | None:
    """Why the dialogue waits, when its next move is the person's who plays a side; None otherwise."""
    if dialogue.human_side is None or dialogue.status != DialogueStatus.PAUSED:
        return None  # the engine parks a dialogue (paused) when the person's move comes
    move = plan(dialogue_state(dialogue))
    return move.reason if move.kind == MoveKind.HUMAN else None


def dialogue_live_context(dialogue: Dialogue, views: list[TurnView], *, can: dict[str, bool]) -> dict[str, Any]:
    """What the dialogue page and its live updates share: status, stepping, chart, a person's turn."""
    waiting = waiting_for_person(dialogue)
    return {
        "waiting": waiting,
        "action_types": [t.value for t in ActionType] if waiting else [],
        "human_text_limit": HUMAN_TEXT_LIMIT,
        "dialogue": dialogue,
        "names": [dialogue.task.agent1.full_name, dialogue.task.agent2.full_name],
        "stepping": stepping(dialogue),
        "figure": chart_json(dialogue, views),
        "has_ratings": any(v.stored_rating is not None for v in views),
        "last_index": views[-1].index if views else -1,
        "can": can,
    }


def dialogue_state_context(pk: int, *, can: dict[str, bool]) -> dict[str, Any]:
    """The dialogue page's state panel (see dialogue_live_context), read fresh: the answer to an action on it."""
    dialogue = dialogue_get(pk)
    return dialogue_live_context(dialogue, turn_views(dialogue), can=can)


def chart_json(dialogue: Dialogue, views: list[TurnView]) -> str:
    """The rating chart's figure as JSON, from the fragment cache while no turn or rating was added."""
    config = dialogue_config(dialogue)
    key = "chart:" + _digest(
        [
            FRAGMENTS_VERSION,
            dialogue.run.config,
            dialogue.changes,
            dialogue.pk,
            [(v.index, v.turn.branch, _rating_facts(v.stored_rating)) for v in views],
        ]
    )
    cache = caches["fragments"]
    figure = cache.get(key)
    if figure is None:
        figure = json.dumps(rating_chart(views, config))
        cache.set(key, figure)
    return figure


RUNS_PER_PAGE = 20


def runs_page(number: Any, *, newest: int | None = None) -> Page:
    """A page of the runs list, newest first; with `newest`, as it was when that was the newest run (a page drawn
    then, and its live updates, agree on which runs it holds)."""
    runs = Run.objects.order_by("-id")
    if newest is not None:
        runs = runs.filter(pk__lte=newest)
    return Paginator(runs, RUNS_PER_PAGE).get_page(number)


def newest_run_id() -> int:
    return Run.objects.aggregate(newest=Max("id"))["newest"] or 0


def run_cards(runs: list[Run]) -> list[dict[str, Any]]:
    """Runs with their progress and the times the lists show: elapsed and an estimate of the time left."""
    progress = runs_progress(runs)
    return [_card(run, progress[run.pk]) for run in runs]


def run_card(run: Run) -> dict[str, Any]:
    return run_cards([run])[0]


def _card(run: Run, progress: dict[str, Any]) -> dict[str, Any]:
    last = progress["last_finished"]
    end = timezone.now() if run.status == RunStatus.RUNNING else (last or timezone.now())
    elapsed = end - run.created_at
    settled, tasks = progress["settled"], progress["tasks"]
    left = None
    # No estimate while nothing moves on its own (every unfinished dialogue paused, waiting for a hand).
    moving = progress["running"] + progress["pending"] > 0
    if run.status == RunStatus.RUNNING and moving and 0 < settled < tasks:
        left = elapsed / settled * (tasks - settled)
    return {
        "run": run,
        "p": progress,
        "percent": round(100 * settled / tasks) if tasks else 0,
        "elapsed": "—" if run.is_imported else _short(elapsed),  # made elsewhere: no generation time here
        "left": _short(left) if left is not None else "",
    }


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
