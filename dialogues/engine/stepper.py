"""One step of a dialogue: plan the move, make the LLM calls it needs, return the new turn and its rating.

The Stepper carries out the move: a native or SSI action, a person's action, a forced leave, the turns of the
negotiation workflow (whose calls and prompts are in negotiation.py), and the step rating by n judge samples.

Nothing here touches a database. The caller persists the result (turn, rating and every LLM call) in one
transaction. An answer that cannot be used is asked again a bounded number of times; then the step fails
with the reason (StepFailed). Nothing is ever replaced by a default action.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import negotiation, prompts
from .actions import ACTION_JSON_SCHEMA, Action, ActionType, UnusableAnswer, action_from_dict, parse_json_object
from .context import agent_context, omniscient_context
from .llm import LLM, ChatRequest, ChatResponse, LLMError, MalformedResponse, TransportFailure
from .plan import Move, MoveKind, plan
from .rating import RATING_JSON_SCHEMA, Rating, parse_sample
from .state import DialogueState, EndReason, Turn
from .strategy import Branch


@dataclass
class CallRecord:
    purpose: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    turn_index: int
    responses: list[str] = field(default_factory=list)
    parsed: Any = None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # as the server reported them; None when it did not
    latency_ms: float = 0.0
    endpoint: str = ""
    model: str = ""
    transport_retries: int = 0
    requests: int = 0
    finish_reasons: list[str] = field(default_factory=list)


logger = logging.getLogger(__name__)
REPAIR_QUOTE_LIMIT = 2000  # characters of an unusable answer quoted back in a re-ask


@dataclass(frozen=True)
class Repair:
    """Why the previous answer to the same prompt could not be used, and the answer: a re-ask shows both, so that
    a deterministic server (temperature 0) answers differently and a sampling one knows what went wrong."""

    answer: str
    problem: str

    def messages(self, json_answer: bool, prompt_set: prompts.PromptSet) -> tuple[dict[str, str], ...]:
        quoted = self.answer if len(self.answer) <= REPAIR_QUOTE_LIMIT else self.answer[:REPAIR_QUOTE_LIMIT] + " …"
        shape = (
            "only the JSON object, nothing before or after it, and keep it short."
            if json_answer
            else "only the text asked for, and keep it short."
        )
        return (
            {"role": "assistant", "content": quoted or "(empty)"},
            {"role": "user", "content": prompt_set.render("repair", problem=self.problem.rstrip("."), shape=shape)},
        )


def cut_off_problem(response: ChatResponse, index: int = 0) -> str | None:
    """Why answer `index` cannot be used because it did not end (cut off at max_tokens), or None."""
    if not response.cut_off(index):
        return None
    limit = response.max_tokens
    return f"cut off at max_tokens{f' ({limit:,})' if limit else ''} before it ended"


@dataclass
class StepResult:
    move: Move
    state: DialogueState  # after the step
    turn: Turn | None = None  # the new turn, if the step made one
    rating_index: int | None = None  # the turn the new rating follows
    rating: dict[str, Any] | None = None
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.move.kind == MoveKind.FINISH

    @property
    def end_reason(self) -> EndReason | None:
        return self.move.end_reason if self.finished else None


class StepFailed(Exception):
    def __init__(self, reason: str, calls: list[CallRecord]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.calls = calls


def agent_prompt(state: DialogueState, speaker: int, turn_index: int, *, strategy_instruction: str = "") -> str:
    """The plain SOTOPIA agent prompt (paper A.4.2) as `speaker` sees it at `turn_index`; with an SSI
    instruction for simple strategy injection. Training records use it without the instruction."""
    return state.prompts.render(
        "agent",
        name=state.task.names[speaker],
        context=agent_context(state.task, speaker),
        history=prompts.history_text(state, upto=turn_index),
        turn=turn_index,
        strategy_instruction=f"{strategy_instruction.strip()}\n" if strategy_instruction else "",
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Action):
        return value.as_dict()
    return json.loads(json.dumps(value, default=str))


HUMAN_TEXT_LIMIT = 4000  # characters a person may type for one action


def human_action(action_type: str, argument: str) -> Action:
    """A person's action, checked by the same rules as a model's (type, a non-empty argument where one is
    needed), and not longer than HUMAN_TEXT_LIMIT. Raises UnusableAnswer with what is wrong."""
    if len(argument or "") > HUMAN_TEXT_LIMIT:
        raise UnusableAnswer(f"the text is {len(argument):,} characters long; at most {HUMAN_TEXT_LIMIT:,} are allowed")
    return action_from_dict({"action_type": action_type, "argument": argument})


class Stepper:
    """Runs one move against an LLM and records every call. A HUMAN move takes the person's action instead of
    asking the model (and is rated as the move says); without one, the step makes nothing."""

    def __init__(self, state: DialogueState, llm: LLM, human: Action | None = None) -> None:
        self.state = state
        self.config = state.config
        self.llm = llm
        self.human = human
        self.calls: list[CallRecord] = []

    # --- LLM plumbing ------------------------------------------------------------------------------------

    def _seed(self, *parts: object) -> int:
        text = ":".join(str(p) for p in (self.state.seed, *parts))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF

    async def _request(
        self,
        purpose: str,
        prompt: str,
        *,
        turn_index: int,
        n: int = 1,
        temperature: float | None = None,
        schema: dict[str, Any] | None = None,
        attempt: int = 0,
        meta: dict[str, Any] | None = None,
        repair: Repair | None = None,
    ) -> tuple[CallRecord, ChatResponse | None]:
        sampling = self.config.sampling
        messages: tuple[dict[str, str], ...] = ({"role": "user", "content": prompt},)
        if repair is not None:
            messages += repair.messages(json_answer=schema is not None, prompt_set=self.state.prompts)
        request = ChatRequest(
            purpose=purpose,
            messages=messages,
            n=n,
            temperature=sampling.temperature if temperature is None else temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=self._seed(turn_index, purpose, attempt),
            json_schema=schema,
            meta={
                **self.state.meta,
                "seed": self.state.seed,
                "turn": turn_index,
                "purpose": purpose,
                "attempt": attempt,
                "names": list(self.state.task.names),
                "proposals": [t.proposal.value for t in self.state.turns if t.proposal],
                "nsi_started_at": self.state.nsi_started_at,
                "exit": self.state.first_confirm is not None,
                **(meta or {}),
            },
        )
        record = CallRecord(
            purpose=purpose,
            messages=list(request.messages),
            turn_index=turn_index,
            params={
                "n": n,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "max_tokens": request.max_tokens,
                "seed": request.seed,
                "structured": schema is not None,
            },
        )
        self.calls.append(record)
        try:
            response = await self.llm.chat(request)
        except TransportFailure as exc:
            record.error = f"transport: {exc}"
            record.transport_retries = exc.retries
            record.endpoint = exc.endpoint
            raise StepFailed(f"{purpose}: the LLM server failed: {exc}", self.calls) from exc
        except MalformedResponse as exc:
            self._fill(record, exc.response)
            record.error = f"malformed response: {exc}"
            return record, None
        except LLMError as exc:  # the prompt does not fit the context: asking again cannot help
            record.error = str(exc)
            raise StepFailed(f"{purpose} at turn {turn_index}: {exc}", self.calls) from exc
        self._fill(record, response)
        return record, response

    @staticmethod
    def _fill(record: CallRecord, response: ChatResponse) -> None:
        record.responses = list(response.texts)
        record.prompt_tokens = response.prompt_tokens
        record.completion_tokens = response.completion_tokens
        record.cached_tokens = response.cached_tokens
        record.latency_ms = response.latency_ms
        record.endpoint = response.endpoint
        record.model = response.model
        record.transport_retries = response.transport_retries
        record.requests = response.requests
        record.finish_reasons = list(response.finish_reasons)
        if response.adapted or response.max_tokens is not None:
            # what the client changed for this server, beside what the engine asked for
            record.params["sent"] = {"max_tokens": response.max_tokens or record.params["max_tokens"]}
            record.params["adapted"] = list(response.adapted)

    async def _ask(
        self,
        purpose: str,
        prompt: str,
        parse: Callable[[str | None], Any],
        *,
        turn_index: int,
        schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        problem = ""
        repair: Repair | None = None
        tries = self.config.unusable_retries + 1
        for attempt in range(tries):
            record, response = await self._request(
                purpose, prompt, turn_index=turn_index, schema=schema, attempt=attempt, meta=meta, repair=repair
            )
            if response is None:
                problem = record.error
                continue
            text = response.texts[0] if response.texts else None
            try:
                cut = cut_off_problem(response)
                if cut is not None:  # an answer that did not end is not parsed as if it had
                    raise UnusableAnswer(cut)
                value = parse(text)
            except UnusableAnswer as exc:
                record.error = f"unusable answer: {exc}"
                problem = str(exc)
                repair = Repair(text or "", problem)
                continue
            record.parsed = _jsonable(value)
            return value
        raise StepFailed(
            f"{purpose} at turn {turn_index}: no usable answer after {tries} tries ({problem})", self.calls
        )

    # --- moves -------------------------------------------------------------------------------------------

    async def run(self) -> StepResult:
        move = plan(self.state)
        if self.human is not None and move.kind != MoveKind.HUMAN:
            raise StepFailed(f"it is not the person's turn: {move.reason}", [])
        if move.kind == MoveKind.FINISH or (move.kind == MoveKind.HUMAN and self.human is None):
            return StepResult(move, self.state)
        if move.kind == MoveKind.CLOSING_RATING:
            index = self.state.turns[-1].index
            rating = await self._rate(self.state, index, rated={"closing": True})
            return StepResult(
                move, self.state.with_rating(index, rating), rating_index=index, rating=rating, calls=self.calls
            )
        if move.kind == MoveKind.FORCED_LEAVE:
            turn = self._turn(move, Action(ActionType.LEAVE), forced=True)
        elif move.kind == MoveKind.HUMAN:
            turn = self._turn(move, self.human, human=True)
        elif move.kind == MoveKind.EXIT_CONFIRM:
            turn = self._turn(move, **await negotiation.exit_confirm(self.state, self._ask))
        elif move.branch == Branch.NSI:
            turn = self._turn(move, **await negotiation.negotiate(self.state, move, self._ask))
        else:
            turn = await self._act(move)
        state = self.state.with_turn(turn)
        result = StepResult(move, state, turn=turn, calls=self.calls)
        if move.rate_after:
            rated = {"branch": turn.branch.value, "nsi_step": turn.nsi_step, "forced": turn.forced, "human": turn.human}
            rating = await self._rate(state, turn.index, rated=rated)
            result.state = state.with_rating(turn.index, rating)
            result.turn = result.state.turns[-1]
            result.rating_index, result.rating = turn.index, rating
        return result

    def _turn(self, move: Move, action: Action, **fields: Any) -> Turn:
        return Turn(
            index=self.state.next_index,
            speaker=self.state.next_speaker,
            action=action,
            branch=move.branch or Branch.NSC,
            reason=move.reason,
            **fields,
        )

    async def _act(self, move: Move) -> Turn:
        """A native (NSC) or simple-strategy (SSI) action with the SOTOPIA agent prompt."""
        index, speaker = self.state.next_index, self.state.next_speaker
        instruction = self.state.prompts.raw("ssi_instruction") if move.branch == Branch.SSI else ""
        prompt = agent_prompt(self.state, speaker, index, strategy_instruction=instruction)
        purpose = "action.ssi" if move.branch == Branch.SSI else "action.native"
        action = await self._ask(
            purpose,
            prompt,
            lambda text: action_from_dict(parse_json_object(text)),
            turn_index=index,
            schema=ACTION_JSON_SCHEMA,
            meta={"branch": move.branch.value},
        )
        return self._turn(move, action)

    async def _rate(self, state: DialogueState, index: int, *, rated: dict[str, Any]) -> dict[str, Any]:
        """n judge samples (one request with n where the server allows it); malformed samples are dropped and
        asked again a bounded number of times."""
        config, task = self.config, state.task
        prompt = state.prompts.render(
            "rating",
            agent1=task.names[0],
            agent2=task.names[1],
            context=omniscient_context(task),
            history=prompts.history_text(state),
        )
        wanted = config.judge_samples
        samples, rejected = [], []
        problem = ""
        returned = 0
        repair: Repair | None = None
        for attempt in range(config.judge_reasks + 1):
            missing = wanted - len(samples)
            if missing <= 0:
                break
            record, response = await self._request(
                "rating",
                prompt,
                turn_index=index,
                n=missing,
                temperature=config.judge_temperature,
                schema=RATING_JSON_SCHEMA,
                attempt=attempt,
                meta={"rated": rated, "rated_turn": index},
                repair=repair,
            )
            if response is None:
                problem = record.error
                continue
            returned += len(response.texts)
            parsed = []
            for i, text in enumerate(response.texts[:missing]):
                try:
                    cut = cut_off_problem(response, i)
                    if cut is not None:
                        raise UnusableAnswer(cut)
                    sample = parse_sample(text)
                except UnusableAnswer as exc:
                    rejected.append({"raw": (text or "")[:4000], "reason": str(exc)})
                    parsed.append({"error": str(exc)})
                    problem = str(exc)
                    repair = Repair(text or "", problem)
                    continue
                samples.append(sample)
                parsed.append(sample.as_dict())
            if len(response.texts) < missing:
                problem = f"asked for {missing} samples, got {len(response.texts)}"
            record.parsed = parsed
            if any("error" in p for p in parsed) or len(response.texts) < missing:
                record.error = problem
        if len(samples) < config.judge_min_valid:
            raise StepFailed(
                f"step rating after turn {index}: {len(samples)} of {wanted} judge samples usable after "
                f"{config.judge_reasks} re-asks (at least {config.judge_min_valid} needed); last problem: {problem}",
                self.calls,
            )
        rating = Rating(tuple(samples), requested=wanted, rejected=tuple(rejected), returned=returned).as_dict()
        if rated.get("closing"):
            rating["closing"] = True
        return rating


async def advance(state: DialogueState, llm: LLM, human: Action | None = None) -> StepResult:
    """Advance the dialogue by exactly one move (with a person's action when the move is theirs). Raises
    StepFailed with the calls made so far, also when something unexpected went wrong inside the step (a bug, a
    template the engine could not fill): the dialogue then fails with that reason, logged with its traceback,
    instead of the error escaping and leaving it in flight."""
    stepper = Stepper(state, llm, human)
    try:
        return await stepper.run()
    except StepFailed:
        raise
    except Exception as exc:
        logger.exception("step of a dialogue at turn %s failed unexpectedly", state.next_index)
        raise StepFailed(
            f"the step at turn {state.next_index} failed unexpectedly: {type(exc).__name__}: {str(exc)[:500]}",
            stepper.calls,
        ) from exc
