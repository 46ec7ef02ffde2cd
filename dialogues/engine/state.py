"""The state of one dialogue as the engine sees it: the task, the run configuration and the turns so far."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .actions import Action, ActionType
from .config import RunConfig
from .context import TaskSpec
from .prompts import PromptSet, builtin
from .strategy import Branch


class NsiStep(StrEnum):
    RESOURCE = "resource_assessment"
    DIFFERENCE = "assessment_of_difference"
    INITIAL = "initial_proposal"
    UPDATE = "update_proposal"
    EXIT_CONFIRM = "exit_confirm"  # the other side's confirmation after the first confirm_proposal


NSI_STEP_ORDER = (NsiStep.RESOURCE, NsiStep.DIFFERENCE, NsiStep.INITIAL, NsiStep.UPDATE)


class Proposal(StrEnum):
    PRESENT = "present_proposal"
    REVISE = "revise_proposal"
    CONFIRM = "confirm_proposal"


class EndReason(StrEnum):
    BOTH_LEFT = "both_left"
    TURN_LIMIT = "turn_limit"
    NONE_LIMIT = "none_limit"
    ONE_LEFT = "one_left"  # evaluation episodes: SOTOPIA ends when fewer than two agents remain


@dataclass(frozen=True)
class Turn:
    index: int
    speaker: int  # 0 = agent 1 (speaks on even turns), 1 = agent 2
    action: Action
    branch: Branch
    forced: bool = False
    reason: str = ""  # why the engine chose this branch, in words
    nsi_step: NsiStep | None = None
    proposal: Proposal | None = None
    draft: str = ""  # the text before style transfer (NSI)
    own_utility: dict[str, Any] | None = None
    other_utility: dict[str, Any] | None = None
    rating: dict[str, Any] | None = None  # the step rating taken after this turn (Rating.as_dict())
    human: bool = False

    @property
    def is_leave(self) -> bool:
        return self.action.action_type == ActionType.LEAVE


@dataclass(frozen=True)
class DialogueState:
    task: TaskSpec
    config: RunConfig
    turns: tuple[Turn, ...] = ()
    seed: int = 0  # per dialogue (run seed, task, attempt); every request seed derives from it
    nsi_side: int | None = None  # h-NSI: the side that runs the workflow
    meta: dict[str, Any] = field(default_factory=dict)  # facts for offline backends, e.g. {"hard": True}
    human_side: int | None = None  # the side a person plays (its actions are typed, never generated)
    prompts: PromptSet = field(default_factory=builtin)  # the prompt set every call of this dialogue renders

    @property
    def next_index(self) -> int:
        return len(self.turns)

    @property
    def next_speaker(self) -> int:
        return self.next_index % 2

    def latest_rating(self) -> tuple[int, dict[str, Any]] | None:
        for turn in reversed(self.turns):
            if turn.rating is not None:
                return turn.index, turn.rating
        return None

    @property
    def nsi_started_at(self) -> int | None:
        return next((t.index for t in self.turns if t.branch == Branch.NSI), None)

    @property
    def first_confirm(self) -> int | None:
        """Index of the first confirm_proposal made inside the workflow (it starts the exit)."""
        return next(
            (t.index for t in self.turns if t.proposal == Proposal.CONFIRM and t.nsi_step != NsiStep.EXIT_CONFIRM),
            None,
        )

    @property
    def left(self) -> set[int]:
        return {t.speaker for t in self.turns if t.is_leave}

    @property
    def nsi_used(self) -> bool:
        return any(t.branch == Branch.NSI for t in self.turns)

    def trailing_nones(self) -> int:
        count = 0
        for turn in reversed(self.turns):
            if turn.action.action_type != ActionType.NONE:
                break
            count += 1
        return count

    def nsi_turns_of(self, speaker: int) -> list[Turn]:
        return [
            t
            for t in self.turns
            if t.speaker == speaker and t.branch == Branch.NSI and t.nsi_step != NsiStep.EXIT_CONFIRM
        ]

    def last_utilities(self, speaker: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        own = other = None
        for turn in self.nsi_turns_of(speaker):
            own = turn.own_utility or own
            other = turn.other_utility or other
        return own, other

    def final_rating(self) -> dict[str, Any] | None:
        latest = self.latest_rating()
        return None if latest is None else latest[1]

    def with_turn(self, turn: Turn) -> DialogueState:
        return replace(self, turns=(*self.turns, turn))

    def with_rating(self, index: int, rating: dict[str, Any]) -> DialogueState:
        turns = tuple(Turn(**{**t.__dict__, "rating": rating}) if t.index == index else t for t in self.turns)
        return replace(self, turns=turns)
