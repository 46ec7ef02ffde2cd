"""Decisions that are pure arithmetic: strategy selection (Eq. 3), the filter (Eq. 4) and keep-best."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .branches import Branch  # defined in branches.py: the configuration names strategies too
from .config import RunConfig, SsiRule, Variant


@dataclass(frozen=True)
class Selection:
    branch: Branch
    reason: str


def select_strategy(goal_c: float, goal_p: float, config: RunConfig) -> Selection:
    """Paper Eq. 3, thresholds from the run configuration."""
    c_max, p_high, ssi_c_max = config.nsi_goal_c_max, config.goal_p_high, config.ssi_goal_c_max
    shown = f"goal_c {goal_c:.2f}, goal_p {goal_p:.2f}"
    if goal_c <= c_max and goal_p < p_high:
        return Selection(Branch.NSI, f"{shown}: goal_c ≤ {c_max:g} and goal_p < {p_high:g} → NSI")
    high_future = goal_p > p_high if config.ssi_rule == SsiRule.SCRIPT else goal_p >= p_high
    if goal_c <= c_max and high_future:
        sign = ">" if config.ssi_rule == SsiRule.SCRIPT else "≥"
        return Selection(Branch.SSI, f"{shown}: goal_c ≤ {c_max:g} and goal_p {sign} {p_high:g} → SSI")
    if c_max < goal_c < ssi_c_max and goal_p < p_high:
        return Selection(Branch.SSI, f"{shown}: {c_max:g} < goal_c < {ssi_c_max:g} and goal_p < {p_high:g} → SSI")
    return Selection(Branch.NSC, f"{shown}: no injection needed → NSC")


def unless_disabled(selection: Selection, disabled: tuple[str, ...]) -> Selection:
    """A disabled NSI falls back to SSI, a disabled SSI to NSC (the next lighter injection)."""
    branch, reason = selection.branch, selection.reason
    if branch == Branch.NSI and "NSI" in disabled:
        branch, reason = Branch.SSI, f"{reason}, but NSI is disabled → SSI"
    if branch == Branch.SSI and "SSI" in disabled:
        branch, reason = Branch.NSC, f"{reason}, but SSI is disabled → NSC"
    return Selection(branch, reason)


def decide_after_rating(goal_c: float, goal_p: float, terminate: bool, config: RunConfig) -> Selection:
    """What a step rating decides for the next model turn under DSI, outside the negotiation workflow: Eq. 3 (less
    the disabled strategies), then the strict termination vote, which makes the next action a forced leave
    (`Branch.FORCED`) unless NSI was chosen and the workflow takes precedence (termination_overrides_nsi off)."""
    selection = unless_disabled(select_strategy(goal_c, goal_p, config), config.disabled_strategies)
    if selection.branch == Branch.NSI and not (terminate and config.termination_overrides_nsi):
        return selection
    if terminate:
        return Selection(Branch.FORCED, f"{selection.reason}, but a sample voted to end → leave")
    return selection


@dataclass(frozen=True)
class AttemptOutcome:
    index: int
    final_goal_c: float | None
    final_goal_p: float | None
    nsi_used: bool
    both_left: bool


def passes_filter(outcome: AttemptOutcome, config: RunConfig) -> bool:
    """Paper Eq. 4: keep if the final goal_c reaches the threshold (8.0 with NSI, 8.5 without) and both
    agents left; otherwise regenerate. An evaluation episode is never filtered."""
    if config.variant == Variant.PLAIN:
        return True
    if not outcome.both_left or outcome.final_goal_c is None:
        return False
    return outcome.final_goal_c >= config.filter_threshold(nsi_used=outcome.nsi_used)


def fails_only_for_ending(outcome: AttemptOutcome, config: RunConfig) -> bool:
    """The attempt failed the filter only because the agents did not both leave: its final goal_c reaches the
    threshold. (With the paper's 20-turn limit, an agreement confirmed at turns 16–19 fails this way.)"""
    if config.variant == Variant.PLAIN or outcome.both_left or outcome.final_goal_c is None:
        return False
    return outcome.final_goal_c >= config.filter_threshold(nsi_used=outcome.nsi_used)


def filter_explanation(outcome: AttemptOutcome, config: RunConfig) -> str:
    if config.variant == Variant.PLAIN:
        return "evaluation episode: not filtered, kept as played"
    threshold = config.filter_threshold(nsi_used=outcome.nsi_used)
    if outcome.final_goal_c is None:
        return "no final rating"
    verdict = "passes" if passes_filter(outcome, config) else "fails"
    ended = "both agents left" if outcome.both_left else "the agents did not both leave"
    return (
        f"{verdict}: final goal_c {outcome.final_goal_c:.2f} vs {threshold:g} "
        f"({'NSI used' if outcome.nsi_used else 'no NSI'}); {ended}"
    )


def choose_kept(outcomes: Sequence[AttemptOutcome], config: RunConfig) -> int | None:
    """The attempt to keep: the first that passes; if none passes, the best by final goal_c, then final
    goal_p, then the earliest attempt (unless keep_best is off, as in the authors' script)."""
    finished = [o for o in outcomes if o.final_goal_c is not None]
    for outcome in sorted(finished, key=lambda o: o.index):
        if passes_filter(outcome, config):
            return outcome.index
    if not finished or not config.keep_best:
        return None
    best = min(finished, key=lambda o: (-o.final_goal_c, -(o.final_goal_p or 0.0), o.index))
    return best.index
