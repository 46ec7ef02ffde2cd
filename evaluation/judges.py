"""The LLM judges of evaluation (METHOD.md §3–4): prompts, answer parsing with range checks, and asking for k
samples with bounded re-asks. Pure Python over the engine's LLM boundary; the database is the caller's business.

- Relevance (S_rel, paper B.4.2): one action of one agent against that agent's goal, with a few recent turns for
  reference; the score is one of −1, −0.5, 0, 0.5, 1, with its justification.
- Episode (SOTOPIA-EVAL, paper A.2): the whole interaction, seven dimensions per agent with their ranges and the
  reasoning for each.

Judges answer at temperature 0; k samples are k separate requests (vLLM refuses n > 1 at temperature 0, and the
client splits such a request). An answer that cannot be used is asked again up to `retries` times; if fewer than
`min_valid` samples are usable after that, the judgement is reported as failed with the last reason.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dialogues.engine.actions import UnusableAnswer, parse_json_object
from dialogues.engine.context import TaskSpec, omniscient_context, render_for
from dialogues.engine.llm import LLM, ChatRequest, LLMError, MalformedResponse
from dialogues.engine.prompts import PromptSet, builtin
from dialogues.engine.rating import score_schema
from dialogues.engine.stepper import Repair, cut_off_problem

RELEVANCE = "srel"
EPISODE = "sotopia"
TEMPLATES = {RELEVANCE: "relevance", EPISODE: "sotopia_eval"}
RELEVANCE_SCORES = (-1.0, -0.5, 0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Dimension:
    key: str  # as the judge answers
    label: str  # as tables show it
    low: int
    high: int


# SOTOPIA-EVAL's seven dimensions with METHOD.md §4's ranges (FIN is [−5, 5], as SOTOPIA's code and tables use).
DIMENSIONS = (
    Dimension("believability", "BEL", 0, 10),
    Dimension("relationship", "REL", -5, 5),
    Dimension("knowledge", "KNO", 0, 10),
    Dimension("secret", "SEC", -10, 0),
    Dimension("social_rules", "SOC", -10, 0),
    Dimension("financial_and_material_benefits", "FIN", -5, 5),
    Dimension("goal", "GOAL", 0, 10),
)
OVERALL_RANGE = (sum(d.low for d in DIMENSIONS) / len(DIMENSIONS), sum(d.high for d in DIMENSIONS) / len(DIMENSIONS))


@dataclass(frozen=True)
class JudgeConfig:
    """Every number of the judges, with the paper's defaults."""

    relevance_samples: int = 1  # the paper averages one GPT-4 score per action
    relevance_history: int = 4  # recent turns shown before the judged action
    episode_samples: int = 3  # paper A.3: three samples averaged
    temperature: float = 0.0
    retries: int = 3  # re-asks for answers that cannot be used
    max_tokens: int = 2048  # the relevance judge's longest answer
    episode_max_tokens: int = 4096  # SOTOPIA-EVAL's longest answer (paper A.3), whichever evaluator writes the prompt

    def __post_init__(self) -> None:
        problems = []
        if self.relevance_samples < 1 or self.episode_samples < 1:
            problems.append("sample counts must be at least 1")
        if self.relevance_history < 0 or self.retries < 0:
            problems.append("history turns and retries cannot be negative")
        if not 0 <= self.temperature <= 2 or self.max_tokens < 1 or self.episode_max_tokens < 1:
            problems.append("temperature in [0, 2] and max_tokens at least 1")
        if problems:
            raise ValueError("invalid judge configuration: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JudgeConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def prompt_version(metric: str, prompt_set: PromptSet | None = None) -> str:
    """The judge's prompt version, the hash of its template in the prompt set (the built-in one by default): results
    are kept per (judge model, prompt version)."""
    text = (prompt_set or builtin()).raw(TEMPLATES[metric])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- prompts ---------------------------------------------------------------------------------------------


def _lines(turns: list[tuple[int, str]]) -> str:
    return "\n".join(f"Turn #{index}\n{line}" for index, line in turns)


def relevance_prompt(
    spec: TaskSpec,
    speaker: int,
    lines: list[tuple[int, str]],
    position: int,
    history: int,
    prompt_set: PromptSet | None = None,
) -> str:
    """The prompt for the action at `position` of `lines` ((turn index, transcript line) of the whole dialogue)."""
    index, action = lines[position]
    before = lines[max(0, position - history) : position]
    return (prompt_set or builtin()).render(
        TEMPLATES[RELEVANCE],
        agent1=spec.names[0],
        agent2=spec.names[1],
        name=spec.names[speaker],
        goal=render_for(spec.goals[speaker], "environment"),
        history=_lines(before) if before else "(none)",
        turn=index,
        action=action,
    )


def episode_prompt(spec: TaskSpec, lines: list[tuple[int, str]], prompt_set: PromptSet | None = None) -> str:
    return (prompt_set or builtin()).render(
        TEMPLATES[EPISODE],
        agent1=spec.names[0],
        agent2=spec.names[1],
        context=omniscient_context(spec),
        history=_lines(lines) if lines else "(no turns)",
    )


# --- parsing ---------------------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise UnusableAnswer(f"{what} is not a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as exc:
            raise UnusableAnswer(f"{what} {value!r} is not a number") from exc
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise UnusableAnswer(f"{what} {value!r} is not a number")
    return float(value)


def parse_relevance(text: str | None) -> dict[str, Any]:
    data = parse_json_object(text)
    if "score" not in data:
        raise UnusableAnswer("no score")
    score = _number(data["score"], "score")
    if score not in RELEVANCE_SCORES:
        raise UnusableAnswer(f"score {score:g} is not one of −1, −0.5, 0, 0.5, 1")
    justification = data.get("score_justification", data.get("justification", ""))
    return {"score": score, "justification": justification if isinstance(justification, str) else str(justification)}


def agent_scores(part: Any, key: str) -> dict[str, dict[str, Any]]:
    """One agent's seven dimensions from a judge's answer, {dimension label: {"score", "reasoning"}}: each given as
    {"reasoning", "score"} or as SOTOPIA's [reasoning, score] pair, every score an integer in its range."""
    if not isinstance(part, dict):
        raise UnusableAnswer(f"missing {key}")
    scores = {}
    for dim in DIMENSIONS:
        entry = part.get(dim.key)
        if isinstance(entry, list | tuple) and len(entry) == 2:  # SOTOPIA's own [reasoning, score] form
            entry = {"reasoning": entry[0], "score": entry[1]}
        if not isinstance(entry, dict) or "score" not in entry:
            raise UnusableAnswer(f"{key}.{dim.key} has no score")
        value = _number(entry["score"], f"{key}.{dim.key} score")
        if value != int(value):
            raise UnusableAnswer(f"{key}.{dim.key} score {value:g} is not an integer")
        if not dim.low <= value <= dim.high:
            raise UnusableAnswer(f"{key}.{dim.key} score {value:g} is outside {dim.low}…{dim.high}")
        reasoning = entry.get("reasoning", "")
        scores[dim.label] = {
            "score": int(value),
            "reasoning": reasoning if isinstance(reasoning, str) else str(reasoning),
        }
    return scores


def parse_episode(text: str | None) -> list[dict[str, dict[str, Any]]]:
    """[agent 1, agent 2], each {dimension label: {"score", "reasoning"}}; every score an integer in range."""
    data = parse_json_object(text)
    return [agent_scores(data.get(key), key) for key in ("agent_1", "agent_2")]


RELEVANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score_justification": {"type": "string"},
        "score": {"type": "number", "enum": list(RELEVANCE_SCORES)},
    },
    "required": ["score_justification", "score"],
}
_AGENT_SCHEMA = {
    "type": "object",
    "properties": {
        d.key: {
            "type": "object",
            "properties": {
                "reasoning": {"type": "string"},
                "score": score_schema(d.low, d.high),
            },
            "required": ["reasoning", "score"],
        }
        for d in DIMENSIONS
    },
    "required": [d.key for d in DIMENSIONS],
}
EPISODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"agent_1": _AGENT_SCHEMA, "agent_2": _AGENT_SCHEMA},
    "required": ["agent_1", "agent_2"],
}


# --- asking ----------------------------------------------------------------------------------------------


@dataclass
class Judgement:
    """The usable samples of one judgement, what was rejected and why, and the failure if too few were usable."""

    prompt: str
    samples: list[Any] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)  # {"raw": ..., "reason": ...}
    problem: str = ""
    requests: int = 0
    returned: int = 0  # answers that came back (asked: the samples wanted; valid: len(samples))
    tokens: int = 0
    model: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


async def judge(
    llm: LLM,
    *,
    purpose: str,
    prompt: str,
    samples: int,
    parse: Callable[[str | None], Any],
    schema: dict[str, Any],
    config: JudgeConfig,
    max_tokens: int | None = None,
    meta: dict[str, Any] | None = None,
    prompt_set: PromptSet | None = None,
) -> Judgement:
    """Ask for `samples` usable answers; re-ask only for the ones that could not be used, `config.retries` times.
    A re-ask quotes the unusable answer and why (a repair turn): at temperature 0 the same request would get the
    same answer. `max_tokens`: the longest answer, `config.max_tokens` if not given."""
    result = Judgement(prompt=prompt)
    repair: Repair | None = None
    for _ in range(config.retries + 1):
        wanted = samples - len(result.samples)
        if wanted <= 0:
            break
        request = ChatRequest(
            purpose=purpose,
            messages=({"role": "user", "content": prompt},)
            + (repair.messages(json_answer=True, prompt_set=prompt_set or builtin()) if repair else ()),
            n=wanted,
            temperature=config.temperature,
            top_p=1.0,
            max_tokens=max_tokens or config.max_tokens,
            json_schema=schema,
            meta=dict(meta or {}),
        )
        try:
            response = await llm.chat(request)
        except MalformedResponse as exc:
            result.requests += exc.response.requests
            result.rejected.append({"raw": "", "reason": str(exc)})
            continue
        except LLMError as exc:  # the server kept failing after the client's bounded transport retries
            result.problem = f"the judge could not be reached: {exc}"
            return result
        result.requests += response.requests
        result.tokens += response.prompt_tokens + response.completion_tokens
        result.model = response.model
        result.returned += len(response.texts)
        for i, text in enumerate(response.texts):
            try:
                cut = cut_off_problem(response, i)
                if cut is not None:
                    raise UnusableAnswer(cut)
                result.samples.append(parse(text))
            except UnusableAnswer as exc:
                result.rejected.append({"raw": text[:2000], "reason": str(exc)})
                repair = Repair(text, str(exc))
    if len(result.samples) < samples:
        last = result.rejected[-1]["reason"] if result.rejected else "no answer"
        result.problem = (
            f"{len(result.samples)} of {samples} samples usable after {config.retries} re-asks; last problem: {last}"
        )
    return result


def relevance_mean(samples: list[dict[str, Any]]) -> float:
    return sum(s["score"] for s in samples) / len(samples)


def episode_means(samples: list[list[dict[str, dict[str, Any]]]], speaker: int) -> dict[str, float]:
    """The mean of every dimension over the samples for one agent, and Overall (the mean of the seven)."""
    means = {d.label: sum(s[speaker][d.label]["score"] for s in samples) / len(samples) for d in DIMENSIONS}
    means["Overall"] = sum(means[d.label] for d in DIMENSIONS) / len(DIMENSIONS)
    return means
