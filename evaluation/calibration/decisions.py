"""What would change if the people's ratings replaced the step-rating judge's on the rated turns: the strategy the
method would have chosen (paper Eq. 3, counted from → to), the strict termination vote, and the filter verdict
(Eq. 4) of the dialogues whose final rated turn people rated.

Every decision is the engine's own (dialogues.engine: `decide_after_rating`, `passes_filter`, and `Rating` for the
aggregate): the people's answers on a turn are treated as the judge's samples would be, so their goal_c is the mean
of (step1 + step2) / 2 over the people, their goal_p the mean of (step3 + step4) / 2, and their termination vote is
strict (any person answering step5 = 0 ends the conversation). Only people who answered all five steps count here.
Pure: no Django.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dialogues.engine.branches import Branch
from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.rating import STEPS, Rating, RatingSample
from dialogues.engine.strategy import AttemptOutcome, decide_after_rating, passes_filter


@dataclass(frozen=True)
class RatedTurn:
    dialogue: int
    index: int
    judge_goal_c: float
    judge_goal_p: float
    judge_terminate: bool
    people: tuple[Mapping[str, int], ...]  # each person's answers {step1..step5}
    decides: bool  # the rating chose what followed (DSI or Raw, outside the negotiation workflow, a model turn next)
    final: bool  # the dialogue's final rating: the filter's input


@dataclass(frozen=True)
class DialogueFacts:
    id: int
    config: RunConfig
    attempt: int
    nsi_used: bool
    both_left: bool


@dataclass
class FilterChange:
    dialogue: int
    judge_goal_c: float
    people_goal_c: float
    judge_passes: bool
    people_passes: bool


@dataclass
class DecisionChanges:
    strategy: Counter = field(default_factory=Counter)  # (judge's choice, people's choice) -> turns
    termination: Counter = field(default_factory=Counter)  # (judge ends, people end) -> turns
    filters: list[FilterChange] = field(default_factory=list)
    incomplete: int = 0  # rated turns people answered, but nobody all five steps

    @property
    def strategy_turns(self) -> int:
        return sum(self.strategy.values())

    @property
    def strategy_changed(self) -> list[tuple[str, str, int]]:
        return sorted(((a, b, n) for (a, b), n in self.strategy.items() if a != b), key=lambda r: (-r[2], r[0], r[1]))

    @property
    def strategy_table(self) -> list[tuple[str, str, int]]:
        return sorted(((a, b, n) for (a, b), n in self.strategy.items()), key=lambda r: (r[0] != r[1], r[0], r[1]))

    @property
    def termination_turns(self) -> int:
        return sum(self.termination.values())

    @property
    def termination_cells(self) -> dict[str, int]:
        """The judge's vote against the people's: go_go, go_end, end_go, end_end (judge first)."""
        name = {False: "go", True: "end"}
        return {f"{name[j]}_{name[p]}": self.termination.get((j, p), 0) for j in (False, True) for p in (False, True)}

    @property
    def would_fail(self) -> int:
        return sum(1 for f in self.filters if f.judge_passes and not f.people_passes)

    @property
    def would_pass(self) -> int:
        return sum(1 for f in self.filters if not f.judge_passes and f.people_passes)


def people_rating(answers: Sequence[Mapping[str, int]]) -> Rating | None:
    """The people's complete answers as the engine's aggregate of samples; None when nobody answered all five."""
    complete = [a for a in answers if all(a.get(step) is not None for step in STEPS)]
    samples = tuple(RatingSample({step: int(a[step]) for step in STEPS}, {}) for a in complete)
    return Rating(samples, requested=len(answers)) if samples else None


def _strategy_name(branch: Branch) -> str:
    return "leave (termination)" if branch == Branch.FORCED else branch.value


def decision_changes(turns: Sequence[RatedTurn], dialogues: Mapping[int, DialogueFacts]) -> DecisionChanges:
    changes = DecisionChanges()
    for turn in turns:
        if not turn.people:
            continue
        facts = dialogues[turn.dialogue]
        theirs = people_rating(turn.people)
        if theirs is None:
            changes.incomplete += 1
            continue
        config = facts.config
        if turn.decides:
            changes.termination[(turn.judge_terminate, theirs.terminate)] += 1
            if config.variant == Variant.DSI and not config.force_strategy:
                judge = decide_after_rating(turn.judge_goal_c, turn.judge_goal_p, turn.judge_terminate, config)
                people = decide_after_rating(theirs.goal_c, theirs.goal_p, theirs.terminate, config)
                changes.strategy[(_strategy_name(judge.branch), _strategy_name(people.branch))] += 1
        if turn.final and config.variant != Variant.PLAIN:
            judge_outcome = AttemptOutcome(
                facts.attempt, turn.judge_goal_c, turn.judge_goal_p, facts.nsi_used, facts.both_left
            )
            people_outcome = AttemptOutcome(
                facts.attempt, theirs.goal_c, theirs.goal_p, facts.nsi_used, facts.both_left
            )
            changes.filters.append(
                FilterChange(
                    dialogue=turn.dialogue,
                    judge_goal_c=turn.judge_goal_c,
                    people_goal_c=theirs.goal_c,
                    judge_passes=passes_filter(judge_outcome, config),
                    people_passes=passes_filter(people_outcome, config),
                )
            )
    return changes
