"""The negotiation strategy injection (NSI) workflow: the LLM calls one turn of it makes, their prompts, and how each
answer is read.

What a workflow turn asks depends on its step (chosen by plan.py): RESOURCE asks for the agent's own utility, then
the interests to voice; DIFFERENCE asks for the other's utility, then the difference to voice; INITIAL asks for
reasoning, and later steps for both utilities updated with a reasoning draft, before a proposal of one of the
allowed kinds (present, revise, confirm). Every turn ends with a style transfer of the draft into the agent's
voice. The exit confirmation is the forced turn that confirms the other's proposal.

`ask` is the Stepper's: one recorded LLM call, asked again a bounded number of times while the answer is unusable.
Both functions return the new turn's fields; the Stepper makes the turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from . import prompts
from .actions import Action, ActionType, UnusableAnswer, action_from_dict, parse_json_object
from .context import agent_context
from .plan import Move
from .state import DialogueState, NsiStep, Proposal
from .utility import MATTER_FIELDS, NON_EMPTY, parse_utility, update_schema, utility_schema


class Ask(Protocol):
    async def __call__(
        self,
        purpose: str,
        prompt: str,
        parse: Callable[[str | None], Any],
        *,
        turn_index: int,
        schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any: ...


def nsi_prefix(state: DialogueState, speaker: int, index: int) -> str:
    """The beginning every workflow prompt shares: who the agent is, the task context and the history."""
    return state.prompts.render(
        "nsi_prefix",
        name=state.task.names[speaker],
        context=agent_context(state.task, speaker),
        history=prompts.history_text(state),
        turn=index,
    )


async def negotiate(state: DialogueState, move: Move, ask: Ask) -> dict[str, Any]:
    """One turn of the negotiation workflow: a reasoning call, a draft, and a style transfer."""
    index, speaker = state.next_index, state.next_speaker
    other_name = state.task.names[1 - speaker]
    own, other = state.last_utilities(speaker)
    step = move.nsi_step
    form = state.config.utility_form
    matter_fields, matter_example = MATTER_FIELDS[form]
    meta = {
        "nsi_step": step.value,
        "options": [o.value for o in move.options],
        "nsi_turns_before": len(state.nsi_turns_of(speaker)),
    }
    context = {
        "prefix": nsi_prefix(state, speaker, index),
        "other": other_name,
        "matter_fields": matter_fields,
        "matter_example": matter_example,
    }

    async def ask_step(
        purpose: str, parse: Callable[[str | None], Any], *, schema: dict[str, Any] | None = None, **values: object
    ) -> Any:
        # every workflow prompt shares one context; the utilities are the latest of this turn
        prompt = state.prompts.render(
            purpose.replace(".", "_"),
            **context,
            own_utility=_format_utility(own),
            other_utility=_format_utility(other),
            **values,
        )
        return await ask(purpose, prompt, parse, turn_index=index, schema=schema, meta=meta)

    def utility_of(text: str | None) -> dict[str, Any]:
        return parse_utility(parse_json_object(text), form)

    def speech(text: str | None) -> Action:
        return action_from_dict(parse_json_object(text), allowed=frozenset({ActionType.SPEAK}))

    def updated(text: str | None) -> tuple[dict[str, Any], dict[str, Any], str]:
        data = parse_json_object(text)
        return (
            parse_utility({"matters": data.get("own_matters")}, form),
            parse_utility({"matters": data.get("other_matters")}, form),
            _field(data, "draft"),
        )

    def proposal_of(text: str | None) -> tuple[Proposal, Action]:
        data = parse_json_object(text)
        kind = data.get("proposal_type")
        allowed = {o.value for o in move.options}
        if kind not in allowed:
            raise UnusableAnswer(f"proposal_type {kind!r} is not one of {sorted(allowed)}")
        return Proposal(kind), action_from_dict(data, allowed=frozenset({ActionType.SPEAK}))

    proposal: Proposal | None = None
    if step == NsiStep.RESOURCE:
        own = await ask_step("nsi.own_utility", utility_of, schema=utility_schema(form))
        draft = (await ask_step("nsi.interests", speech, schema=SPEECH_SCHEMA)).argument
    elif step == NsiStep.DIFFERENCE:
        other = await ask_step("nsi.other_utility", utility_of, schema=utility_schema(form))
        draft = (await ask_step("nsi.difference", speech, schema=SPEECH_SCHEMA)).argument
    else:
        if step == NsiStep.INITIAL:
            reasoning = await ask_step(
                "nsi.proposal_draft", lambda text: _field(parse_json_object(text), "draft"), schema=DRAFT_SCHEMA
            )
        else:
            own, other, reasoning = await ask_step("nsi.update", updated, schema=update_schema(form))
        proposal, draft_action = await ask_step(
            "nsi.proposal",
            proposal_of,
            schema=_proposal_schema(move.options),
            draft=reasoning,
            options=_options_text(move.options, other_name),
        )
        draft = draft_action.argument
    last = state.turns[-1] if state.turns else None
    styled = await ask(
        "nsi.style_transfer",
        state.prompts.render(
            "style_transfer",
            name=state.task.names[speaker],
            context=agent_context(state.task, speaker),
            other=other_name,
            draft=draft,
            last_line=last.action.transcript_line(state.task.names[last.speaker]) if last else "(nothing yet)",
        ),
        _clean_styled,
        turn_index=index,
        meta=meta,
    )
    return {
        "action": Action(ActionType.SPEAK, styled),
        "nsi_step": step,
        "proposal": proposal,
        "draft": draft,
        "own_utility": own,
        "other_utility": other,
    }


async def exit_confirm(state: DialogueState, ask: Ask) -> dict[str, Any]:
    """The forced last turn of the workflow: the agent confirms the other's proposal."""
    index, speaker = state.next_index, state.next_speaker
    prompt = state.prompts.render(
        "nsi_confirm", prefix=nsi_prefix(state, speaker, index), other=state.task.names[1 - speaker]
    )

    def confirmation(text: str | None) -> Action:
        data = parse_json_object(text)
        if data.get("proposal_type") != Proposal.CONFIRM.value:
            raise UnusableAnswer(f"expected confirm_proposal, got {data.get('proposal_type')!r}")
        return action_from_dict(data, allowed=frozenset({ActionType.SPEAK}))

    action = await ask(
        "nsi.confirm",
        prompt,
        confirmation,
        turn_index=index,
        schema=_proposal_schema((Proposal.CONFIRM,)),
        meta={"nsi_step": "exit_confirm"},
    )
    own, other = state.last_utilities(speaker)
    return {
        "action": action,
        "forced": True,
        "nsi_step": NsiStep.EXIT_CONFIRM,
        "proposal": Proposal.CONFIRM,
        "own_utility": own,
        "other_utility": other,
    }


def _format_utility(utility: dict[str, Any] | None) -> str:
    if not utility:
        return "(none yet)"
    return json.dumps({"matters": utility["matters"], "U": utility["U"]}, ensure_ascii=False)


_WHITESPACE = re.compile(r"\s+")


def _clean_styled(text: str | None) -> str:
    """Style transfer returns plain text. Surrounding quotes and line breaks, which the prompt forbids, are
    normalised away; an empty answer is unusable."""
    value = _WHITESPACE.sub(" ", (text or "").strip()).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'“”":
        value = value[1:-1].strip()
    if value.startswith("“") and value.endswith("”"):
        value = value[1:-1].strip()
    if not value:
        raise UnusableAnswer("empty style transfer")
    return value


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise UnusableAnswer(f"missing {name}")
    return value.strip()


# The workflow's answers say what the parsers require, so that a server with a grammar enforces it: a draft or a
# spoken argument is never empty, and the workflow only speaks.
DRAFT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"thought": {"type": "string"}, "draft": NON_EMPTY},
    "required": ["thought", "draft"],
}
SPEECH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"action_type": {"type": "string", "enum": ["speak"]}, "argument": NON_EMPTY},
    "required": ["action_type", "argument"],
    "additionalProperties": False,
}


def _options_text(options: tuple[Proposal, ...], other: str) -> str:
    texts = {
        Proposal.PRESENT: f"present_proposal: put your proposal forward (if {other}'s proposal will not lead to "
        "a win for both of you, offer a new angle)",
        Proposal.REVISE: f"revise_proposal: you agree with {other}'s direction but some details need adjusting",
        Proposal.CONFIRM: f"confirm_proposal: {other}'s proposal is a win for both of you; accept it",
    }
    if len(options) == 1:
        return f'Set "proposal_type" to "{options[0].value}": {texts[options[0]].split(": ", 1)[1]}.'
    lines = "\n".join(f"- {texts[o]}" for o in options)
    return f'Choose "proposal_type" from these options:\n{lines}'


def _proposal_schema(options: tuple[Proposal, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "proposal_type": {"type": "string", "enum": [o.value for o in options]},
            "action_type": {"type": "string", "enum": ["speak"]},
            "argument": NON_EMPTY,
        },
        "required": ["proposal_type", "action_type", "argument"],
    }
