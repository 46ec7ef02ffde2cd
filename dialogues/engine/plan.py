"""What happens next in a dialogue, and why: a pure function of the state (no LLM, no I/O).

The order of the rules is the method (METHOD.md §1, §2):
1. the ending: both left, more than `none_limit` consecutive `none` actions, or the turn limit;
2. after a leave the other agent leaves too (forced), within the turn limit (+ `exit_overrun_turns`);
3. the exit of the negotiation workflow once someone confirmed a proposal;
4. the native start (turns 0..5, rated after turn 5);
5. after that, the variant decides: DSI selects NSC / SSI / NSI from the latest rating (Eq. 3) and a strict
   termination vote makes the next action a forced leave; Raw always NSC; NSI and h-NSI run the workflow.
A dialogue that ends with unrated turns after its last rating gets a closing rating first.

An evaluation episode (variant plain) is played as SOTOPIA plays it: plain prompts on every turn, no step rating,
and it ends when one agent leaves (fewer than two remain), after more than `none_limit` consecutive `none`
actions, or at the turn limit.

Experiments (forks) may force one branch for every model turn after the native start, or disable SSI / NSI
(a disabled NSI falls back to SSI, a disabled SSI to NSC). When a person plays one side, that side's actions
(and its exit confirmation) are theirs to type: the move is HUMAN and the engine waits; forced leaves stay forced.
A person's turn after the native start is always rated.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .config import Variant
from .state import NSI_STEP_ORDER, DialogueState, EndReason, NsiStep, Proposal
from .strategy import Branch, decide_after_rating


class MoveKind(StrEnum):
    ACT = "act"  # an agent acts with the given branch
    FORCED_LEAVE = "forced_leave"
    EXIT_CONFIRM = "exit_confirm"  # the other side confirms after the first confirm_proposal
    CLOSING_RATING = "closing_rating"
    FINISH = "finish"
    HUMAN = "human"  # a person plays the next speaker: wait for their action, then rate as the move says


@dataclass(frozen=True)
class Move:
    kind: MoveKind
    reason: str
    branch: Branch | None = None
    nsi_step: NsiStep | None = None
    options: tuple[Proposal, ...] = ()
    rate_after: bool = False
    end_reason: EndReason | None = None


def plan(state: DialogueState) -> Move:
    move = _plan(state)
    human_turn = state.human_side is not None and state.next_speaker == state.human_side
    if human_turn and move.kind in (MoveKind.ACT, MoveKind.EXIT_CONFIRM):
        who = state.task.names[state.human_side]
        return Move(
            MoveKind.HUMAN,
            f"{who} is played by a person: their action is typed, not generated (the engine would have "
            f"chosen: {move.reason})",
            branch=Branch.HUMAN,
            # after the native start a person's turn is always rated, inside the workflow too, so they see how
            # the judge reads their move; the rating never changes the workflow's course
            rate_after=move.rate_after or state.next_index >= state.config.initial_native_turns,
        )
    return move


def _plan(state: DialogueState) -> Move:
    config, n = state.config, state.next_index
    last = state.turns[-1] if state.turns else None
    if state.left == {0, 1}:
        return _finish(state, EndReason.BOTH_LEFT, "both agents have left")
    if state.trailing_nones() > config.none_limit:
        return _finish(state, EndReason.NONE_LIMIT, f"more than {config.none_limit} consecutive `none` actions")
    if config.variant == Variant.PLAIN:
        return _plain_move(state)
    if last is not None and last.is_leave:
        if n >= config.max_turns + config.exit_overrun_turns:
            return _finish(
                state, EndReason.TURN_LIMIT, f"the turn limit ({config.max_turns}) came before the other left"
            )
        return Move(
            MoveKind.FORCED_LEAVE,
            f"agent {last.speaker + 1} left, so agent {2 - last.speaker} leaves too",
            branch=Branch.FORCED,
        )
    exit_move = _exit_move(state)
    if exit_move is not None:
        return exit_move
    if n >= config.max_turns:
        return _finish(state, EndReason.TURN_LIMIT, f"the turn limit ({config.max_turns}) is reached")
    if n < config.initial_native_turns:
        rate = n == config.initial_native_turns - 1
        return Move(
            MoveKind.ACT,
            f"native start (turns 0–{config.initial_native_turns - 1}): plain prompt"
            + ("; the first step rating follows this turn" if rate else ""),
            branch=Branch.NSC,
            rate_after=rate,
        )
    return _strategy_move(state)


def _plain_move(state: DialogueState) -> Move:
    config, n = state.config, state.next_index
    last = state.turns[-1] if state.turns else None
    if last is not None and last.is_leave:
        who = state.task.names[last.speaker]
        return _finish(state, EndReason.ONE_LEFT, f"{who} left: fewer than two agents remain (SOTOPIA's rule)")
    if n >= config.max_turns:
        return _finish(state, EndReason.TURN_LIMIT, f"the turn limit ({config.max_turns}) is reached")
    return Move(MoveKind.ACT, "evaluation episode: plain prompt, no strategy, no rating", branch=Branch.NSC)


def _finish(state: DialogueState, end_reason: EndReason, why: str) -> Move:
    if state.config.variant == Variant.PLAIN:  # an evaluation episode is never rated
        return Move(MoveKind.FINISH, why, end_reason=end_reason)
    latest = state.latest_rating()
    rated_up_to = -1 if latest is None else latest[0]
    unrated = [t for t in state.turns if t.index > rated_up_to and not t.is_leave]
    if state.turns and (latest is None or unrated):
        return Move(
            MoveKind.CLOSING_RATING,
            f"{why}; the turns since the last rating are unrated, so a closing rating is taken",
            end_reason=end_reason,
        )
    return Move(MoveKind.FINISH, why, end_reason=end_reason)


def _exit_move(state: DialogueState) -> Move | None:
    """The negotiation exit (METHOD.md §2.4): after the first confirm_proposal the other side confirms (one
    call, rated), the first confirmer speaks one native turn (rated), then both leave. In h-NSI each side
    speaks one native turn instead. It starts only inside the turn limit and may run `exit_overrun_turns`
    past it."""
    config, n, first = state.config, state.next_index, state.first_confirm
    if first is None:
        return None
    offset = n - first
    half = config.variant == Variant.HNSI
    native_offsets = (1, 2) if half else (2,)
    if offset == 1 and n >= config.max_turns:
        return _finish(state, EndReason.TURN_LIMIT, f"the turn limit ({config.max_turns}) came before the exit")
    if n >= config.max_turns + config.exit_overrun_turns:
        return _finish(
            state,
            EndReason.TURN_LIMIT,
            f"the exit would run past turn {config.max_turns - 1 + config.exit_overrun_turns}",
        )
    if offset == 1 and not half:
        return Move(
            MoveKind.EXIT_CONFIRM,
            f"turn {first} confirmed the proposal: the other side confirms too",
            branch=Branch.NSI,
            nsi_step=NsiStep.EXIT_CONFIRM,
            rate_after=True,
        )
    if offset in native_offsets:
        return Move(MoveKind.ACT, "negotiation exit: one native turn, rated", branch=Branch.NSC, rate_after=True)
    if offset == native_offsets[-1] + 1:
        return Move(MoveKind.FORCED_LEAVE, "negotiation exit: the agreement stands, both leave", branch=Branch.FORCED)
    return None


def _strategy_move(state: DialogueState) -> Move:
    config, speaker = state.config, state.next_speaker
    if config.force_strategy:
        return _forced_strategy_move(state)
    started = state.nsi_started_at
    if "NSI" in config.disabled_strategies and config.variant in (Variant.NSI, Variant.HNSI):
        return _raw_move(state, f"{config.variant.value} variant with NSI disabled: no strategy injection")
    if config.variant == Variant.NSI:
        why = (
            "in the negotiation workflow"
            if started is not None
            else (f"NSI variant: the workflow starts at turn {config.initial_native_turns} regardless of ratings")
        )
        return _nsi_move(state, why)
    if config.variant == Variant.HNSI:
        if speaker == state.nsi_side:
            return _nsi_move(state, f"h-NSI: agent {speaker + 1} runs the negotiation workflow")
        return Move(MoveKind.ACT, "h-NSI: this side answers with the plain prompt", branch=Branch.NSC)
    if started is not None and "NSI" not in config.disabled_strategies:
        return _nsi_move(state, f"in the negotiation workflow (started at turn {started})")
    latest = state.latest_rating()
    if latest is None:  # cannot happen with the native start; stay native rather than guess
        return Move(MoveKind.ACT, "no step rating yet: plain prompt", branch=Branch.NSC, rate_after=True)
    rated_index, rating = latest
    if config.variant == Variant.RAW:
        return _raw_move(state, "Raw variant: no strategy injection")
    selection = decide_after_rating(rating["goal_c"], rating["goal_p"], rating["terminate"], config)
    if selection.branch == Branch.NSI:
        note = " (the workflow takes precedence over the termination vote)" if rating["terminate"] else ""
        return _nsi_move(state, f"after turn {rated_index}: {selection.reason}{note}")
    if selection.branch == Branch.FORCED:
        return _termination_leave(rated_index, rating)
    return Move(MoveKind.ACT, f"after turn {rated_index}: {selection.reason}", branch=selection.branch, rate_after=True)


def _raw_move(state: DialogueState, why: str) -> Move:
    """No injection: a strict termination vote makes a forced leave, otherwise the plain prompt, rated."""
    latest = state.latest_rating()
    if latest is not None and latest[1]["terminate"]:
        return _termination_leave(*latest)
    return Move(MoveKind.ACT, why, branch=Branch.NSC, rate_after=True)


def _termination_leave(index: int, rating: dict) -> Move:
    votes = sum(1 for s in rating["samples"] if s["votes_to_end"])
    return Move(
        MoveKind.FORCED_LEAVE,
        f"{votes} of {rating['valid']} judge samples after turn {index} voted to end (strict termination): leave",
        branch=Branch.FORCED,
    )


def _forced_strategy_move(state: DialogueState) -> Move:
    """An experiment forced one branch for every model turn after the native start. NSI runs the workflow
    regardless of ratings (as the NSI variant does); SSI and NSC keep the strict termination vote."""
    forced = state.config.force_strategy
    why = f"{forced} forced by this experiment's settings"
    if forced == Branch.NSI:
        return _nsi_move(state, why)
    move = _raw_move(state, why)
    if move.kind == MoveKind.ACT and forced == Branch.SSI:
        return Move(MoveKind.ACT, why, branch=Branch.SSI, rate_after=True)
    return move


def _nsi_move(state: DialogueState, reason: str) -> Move:
    done = len(state.nsi_turns_of(state.next_speaker))
    step = NSI_STEP_ORDER[min(done, len(NSI_STEP_ORDER) - 1)]
    options = {
        NsiStep.INITIAL: (Proposal.PRESENT,),
        NsiStep.UPDATE: (Proposal.PRESENT, Proposal.REVISE, Proposal.CONFIRM),
    }.get(step, ())
    return Move(
        MoveKind.ACT,
        f"{reason}; step: {step.value.replace('_', ' ')}",
        branch=Branch.NSI,
        nsi_step=step,
        options=options,
    )
