"""Prompt sets: every template the engine and the judges use, as one named, immutable, content-hashed version
(ADR 0027), and the dialogue's history as every prompt shows it.

The built-in set is read from this repository's files (dialogues/prompts/*.txt); other sets are rows in the database
(dialogues/prompt_sets) and reach the engine as a PromptSet on the dialogue's state. A set declares its template
syntax: `string.Template` ($name, as ours: JSON examples need no escaping) or Python's `str.format` ({name}, with {{ }}
for braces). Either way only each template's documented placeholders may appear, and a `str.format` template may use
plain names only: no attribute or index access, no conversion, no format spec. A set is checked as a whole
(`check_templates`) before it is saved, and rendering never evaluates anything but a name lookup.

Our templates start with the stable part (who the agent is, the task context) and put what changes last, so a
server with prefix caching reuses the shared beginning.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import DialogueState

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
BUILTIN_NAME = "built-in"
TEMPLATE_LIMIT = 100_000  # characters of one template
SET_LIMIT = 1_000_000  # characters of a whole set


class Syntax(StrEnum):
    TEMPLATE = "template"  # string.Template: $name or ${name}, $$ for a dollar sign
    FORMAT = "format"  # str.format: {name}, {{ and }} for braces


SYNTAX_HELP = {
    Syntax.TEMPLATE: "$name or ${name} (Python's string.Template); $$ writes a dollar sign",
    Syntax.FORMAT: "{name} (Python's str.format, plain names only); {{ and }} write braces",
}


class AnswerShapes(StrEnum):
    OMEGA = "omega"  # the answer shapes of omega-web's own parsers (actions, ratings, utilities, proposals)


ANSWER_SHAPES_HELP = {
    AnswerShapes.OMEGA: "omega-web's own: the JSON keys its parsers read for actions, step ratings, utilities, "
    "proposals and the judges' scores",
}


@dataclass(frozen=True)
class TemplateSpec:
    """What the engine fills into one template: every placeholder it may use (with what it holds), and the ones it
    must use for the prompt to make sense."""

    purpose: str
    placeholders: Mapping[str, str]
    required: frozenset[str] = frozenset()


_PREFIX = {"prefix": "the shared beginning of every workflow prompt (the nsi_prefix template, filled)"}
_NSI_COMMON = {
    **_PREFIX,
    "other": "the other agent's name",
    "matter_fields": "the fields of one matter in the run's utility form",
    "matter_example": "an example matter in the run's utility form",
    "own_utility": "the agent's latest own utility (JSON), or (none yet)",
    "other_utility": "the agent's latest guess of the other's utility (JSON), or (none yet)",
}
_P = frozenset({"prefix"})

SPECS: dict[str, TemplateSpec] = {
    "agent": TemplateSpec(
        "the plain SOTOPIA agent prompt: native (NSC) and SSI actions, and the prompt of every training record",
        {
            "name": "the acting agent's name",
            "context": "the task as the agent sees it (scenario, backgrounds, its own goal)",
            "history": "the turns so far, a numbered line per turn",
            "turn": "the number of the turn being written",
            "strategy_instruction": "the SSI instruction (ssi_instruction) on SSI turns, empty otherwise",
        },
        frozenset({"name", "context", "history", "strategy_instruction"}),
    ),
    "ssi_instruction": TemplateSpec("the simple perspective-taking instruction put into the agent prompt", {}),
    "rating": TemplateSpec(
        "the step-rating judge (goal_c, goal_p and the termination vote, n samples)",
        {
            "agent1": "agent 1's name",
            "agent2": "agent 2's name",
            "context": "the task as the judges see it (everything)",
            "history": "the turns so far",
        },
        frozenset({"context", "history"}),
    ),
    "nsi_prefix": TemplateSpec(
        "the shared beginning of every negotiation-workflow prompt",
        {
            "name": "the acting agent's name",
            "context": "the task as the agent sees it",
            "history": "the turns so far",
            "turn": "the number of the turn being written",
        },
        frozenset({"context", "history"}),
    ),
    "nsi_own_utility": TemplateSpec("workflow: the agent's own utility (steps h, h+1)", _NSI_COMMON, _P),
    "nsi_interests": TemplateSpec("workflow: the interests to voice (steps h, h+1)", _NSI_COMMON, _P),
    "nsi_other_utility": TemplateSpec("workflow: the other's utility as the agent guesses it", _NSI_COMMON, _P),
    "nsi_difference": TemplateSpec("workflow: the difference to voice (steps h+2, h+3)", _NSI_COMMON, _P),
    "nsi_proposal_draft": TemplateSpec("workflow: the reasoning draft of the first proposal", _NSI_COMMON, _P),
    "nsi_update": TemplateSpec("workflow: both utilities updated, with a reasoning draft", _NSI_COMMON, _P),
    "nsi_proposal": TemplateSpec(
        "workflow: the proposal (present, revise or confirm) from the draft",
        {
            **_NSI_COMMON,
            "draft": "the reasoning draft of this turn",
            "options": "the proposal kinds allowed at this turn, in words",
        },
        frozenset({"prefix", "draft", "options"}),
    ),
    "nsi_confirm": TemplateSpec(
        "workflow exit: the forced confirmation of the other's proposal",
        {**_PREFIX, "other": "the other agent's name"},
        _P,
    ),
    "style_transfer": TemplateSpec(
        "the draft utterance rewritten in the agent's own voice",
        {
            "name": "the acting agent's name",
            "context": "the task as the agent sees it",
            "other": "the other agent's name",
            "draft": "the utterance to rewrite",
            "last_line": "the other's last line, or (nothing yet)",
        },
        frozenset({"draft"}),
    ),
    "repair": TemplateSpec(
        "the re-ask after an answer that could not be used (it follows the unusable answer)",
        {"problem": "why the answer could not be used", "shape": "what to answer with"},
        frozenset({"problem"}),
    ),
    "relevance": TemplateSpec(
        "the relevance judge of S_rel: one action against its agent's goal",
        {
            "agent1": "agent 1's name",
            "agent2": "agent 2's name",
            "name": "the acting agent's name",
            "goal": "the acting agent's goal",
            "history": "a few turns before the action",
            "turn": "the action's turn number",
            "action": "the judged action",
        },
        frozenset({"action"}),
    ),
    "sotopia_eval": TemplateSpec(
        "the SOTOPIA-EVAL judge: seven dimensions per agent over the whole episode",
        {
            "agent1": "agent 1's name",
            "agent2": "agent 2's name",
            "context": "the task as the judges see it",
            "history": "the whole episode",
        },
        frozenset({"history"}),
    ),
}
JUDGE_TEMPLATES = frozenset({"relevance", "sotopia_eval"})


class TemplateError(ValueError):
    """What is wrong with one template, where."""

    def __init__(self, template: str, line: int | None, message: str) -> None:
        self.template, self.line, self.message = template, line, message
        super().__init__(f"{template}{f', line {line}' if line else ''}: {message}")


class InvalidPromptSet(ValueError):
    def __init__(self, problems: list[TemplateError]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Field:
    """One placeholder in a template: its name and where it is (character offset, 1-based line)."""

    name: str
    start: int
    end: int
    line: int


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def scan(text: str, syntax: Syntax, template: str = "") -> Iterator[Field]:
    """Every placeholder of `text` in order. Raises TemplateError at the first one that is not a plain name (a lone
    `$`, a `{x.attr}`, `{x[0]}`, `{x!r}`, `{x:>9}`, `{}` or an unmatched brace)."""
    if syntax == Syntax.TEMPLATE:
        for match in string.Template.pattern.finditer(text):
            name = match.group("named") or match.group("braced")
            if name:
                yield Field(name, match.start(), match.end(), _line(text, match.start()))
            elif match.group("invalid") is not None:
                raise TemplateError(
                    template, _line(text, match.start()), "a $ not followed by a placeholder name (write $$ for $)"
                )
        return
    position = 0
    try:
        for literal, name, spec, conversion in string.Formatter().parse(text):
            position += len(literal) + literal.count("{") + literal.count("}")  # {{ and }} read as one brace
            if name is None:
                continue
            line = _line(text, position)
            if not name:
                raise TemplateError(template, line, "a placeholder needs a name: {} and {0} are not allowed")
            if not _IDENTIFIER.match(name):
                kind = "attribute access" if "." in name else "index access" if "[" in name else "a name like that"
                raise TemplateError(template, line, f"{{{name}}}: {kind} is not allowed, only plain names")
            if conversion:
                raise TemplateError(template, line, f"{{{name}!{conversion}}}: conversions are not allowed")
            if spec:
                raise TemplateError(template, line, f"{{{name}:{spec}}}: format specs are not allowed")
            end = position + len(name) + 2
            yield Field(name, position, end, line)
            position = end
    except ValueError as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(
            template, _line(text, _lone_brace(text, position)), f"{exc} (write {{{{ and }}}} for braces)"
        ) from exc


def _lone_brace(text: str, start: int) -> int:
    """Where the first brace from `start` on that is not doubled is (or `start`)."""
    i = start
    while i < len(text):
        if text[i] in "{}":
            if text[i + 1 : i + 2] == text[i]:
                i += 2
                continue
            if text[i] == "}":
                return i
            close = text.find("}", i)
            if close < 0 or "{" in text[i + 1 : close]:
                return i
            i = close + 1
            continue
        i += 1
    return start


def check_templates(templates: Mapping[str, str], syntax: Syntax) -> list[TemplateError]:
    """Everything wrong with a whole set: unknown or missing templates, size, syntax, unknown placeholders (each
    named with template and line) and missing required ones. Empty when the set may be saved."""
    problems: list[TemplateError] = []
    for name in sorted(set(templates) - set(SPECS)):
        problems.append(TemplateError(name, None, f"not a template the engine uses (they are: {', '.join(SPECS)})"))
    for name in SPECS:
        if name not in templates:
            problems.append(TemplateError(name, None, "missing: a set holds every template"))
    total = sum(len(t) for t in templates.values() if isinstance(t, str))
    if total > SET_LIMIT:
        problems.append(TemplateError("(the set)", None, f"{total:,} characters; at most {SET_LIMIT:,}"))
    for name, spec in SPECS.items():
        text = templates.get(name)
        if text is None:
            continue
        if not isinstance(text, str):
            problems.append(TemplateError(name, None, "not text"))
            continue
        if len(text) > TEMPLATE_LIMIT:
            problems.append(TemplateError(name, None, f"{len(text):,} characters; at most {TEMPLATE_LIMIT:,}"))
            continue
        try:
            found = list(scan(text, syntax, name))
        except TemplateError as exc:
            problems.append(exc)
            continue
        for f in found:
            if f.name not in spec.placeholders:
                allowed = ", ".join(_shown(p, syntax) for p in spec.placeholders) or "none"
                problems.append(
                    TemplateError(name, f.line, f"unknown placeholder {_shown(f.name, syntax)} (allowed: {allowed})")
                )
        used = {f.name for f in found}
        for missing in sorted(spec.required - used):
            problems.append(TemplateError(name, None, f"missing placeholder {_shown(missing, syntax)}"))
    return problems


def _shown(name: str, syntax: Syntax) -> str:
    return f"${name}" if syntax == Syntax.TEMPLATE else f"{{{name}}}"


def set_version(templates: Mapping[str, str], syntax: str, answers: str) -> str:
    """A set's content hash: its syntax, answer shapes and every template (the name is not part of it)."""
    digest = hashlib.sha256(f"{syntax}\0{answers}\0".encode())
    for name in sorted(templates):
        digest.update(name.encode() + b"\0" + templates[name].encode() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class PromptSet:
    name: str
    templates: Mapping[str, str] = field(repr=False)
    syntax: Syntax = Syntax.TEMPLATE
    answers: AnswerShapes = AnswerShapes.OMEGA

    @cached_property
    def version(self) -> str:
        return set_version(self.templates, self.syntax, self.answers)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.version})"

    def raw(self, template: str) -> str:
        return self.templates[template]

    def render(self, template: str, /, **values: object) -> str:
        """Fill a template with the values the engine gives; only names are looked up (a set is checked when it is
        saved). A placeholder without a value is an error, never left in the prompt."""
        text = self.templates[template]
        filled = {k: str(v) for k, v in values.items()}
        if self.syntax == Syntax.TEMPLATE:
            return string.Template(text).substitute(filled)
        parts = []
        for literal, name, _spec, _conversion in string.Formatter().parse(text):
            parts.append(literal)
            if name is not None:
                parts.append(filled[name])
        return "".join(parts)


def read_folder(directory: Path) -> dict[str, str]:
    """The templates of a folder of <template>.txt files, byte for byte (line endings kept)."""
    return {path.stem: path.read_bytes().decode("utf-8") for path in sorted(directory.glob("*.txt"))}


@cache
def builtin() -> PromptSet:
    """The built-in set: this repository's files."""
    return PromptSet(BUILTIN_NAME, read_folder(PROMPT_DIR))


def history_text(state: DialogueState, upto: int | None = None) -> str:
    """The turns so far (or before `upto`) as every prompt shows them: a numbered line per turn."""
    names = state.task.names
    turns = state.turns if upto is None else state.turns[:upto]
    return "".join(f"\nTurn #{t.index}\n{t.action.transcript_line(names[t.speaker])}\n" for t in turns)
