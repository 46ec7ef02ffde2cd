"""SOTOPIA supervised fine-tuning records: one agent's prompt at one turn and the action it took.

Three shapes are read: LLaMA-Factory alpaca (`instruction`, `input`, `output`; the authors' published SOTOPIA-Ω
corpus and omega-web's own `sotopia-sft` export), SOTOPIA-π's `{prompt, result}` (prompt possibly prefixed with
LangChain's "Prompt after formatting:") and `{input, output}` (with sotopia-rl's `value`). From the prompt come the
scenario, the two participants in speaking order, each one's background as this agent sees it, this agent's goal
(the other's is `Unknown`) and the history (`Turn #k: Name said: "…"` or `Turn #k` on its own line); from the
output the action at `You are at Turn #k`, a JSON or single-quoted Python dict.

The Collector puts the records of one task together (both agents' perspectives) and the records of one dialogue
together: records whose turns agree wherever both have them are the same dialogue (a prefix tree of turns in a
scratch SQLite file). Nothing is invented: no strategy, no rating, and what no prompt showed stays unknown.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dialogues.engine.actions import UnusableAnswer, action_from_dict, parse_json_object
from dialogues.library.sotopia import Problem

FORMAT = "sotopia-sft"
SHAPES = (("instruction", "output"), ("prompt", "result"), ("input", "output"))
_NAME = re.compile(r"Imagine you are (?P<name>.+?), your task is")
_CONTEXT_START = "Here is the context of this interaction:"
_HISTORY_START = "Conversation Starts:"
_AT_TURN = re.compile(r"You are at Turn #(\d+)")
_TURN = re.compile(r"^Turn #(\d+):?[ \t]*\n?", re.MULTILINE)
_LANGCHAIN_PREFIX = "Prompt after formatting:"


@dataclass(frozen=True)
class Act:
    speaker: int  # 0 = the first participant (speaks at turn 0), 1 = the second
    action_type: str
    argument: str


@dataclass
class SftRecord:
    file: str
    line: int
    names: tuple[str, str]
    side: int  # whose prompt this is
    scenario: str
    context: str  # the context block verbatim
    backgrounds: tuple[str, str]  # as this side sees them ("" for Unknown)
    goal: str  # this side's goal
    turn: int
    acts: list[Act]  # turns 0..turn, the last one this record's output
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task_key(self) -> tuple[str, str, str]:
        return (self.scenario, *self.names)


def is_sft(record: dict[str, Any]) -> bool:
    return any(all(k in record for k in shape) for shape in SHAPES)


def parse(file: str, line: int, record: dict[str, Any]) -> SftRecord:
    """One record, or ValueError carrying a Problem (file, line, field)."""
    prompt_field, output_field = next(((p, o) for p, o in SHAPES if p in record and o in record), SHAPES[0])
    if prompt_field not in record or output_field not in record:
        raise _problem(file, line, "(record)", "expected instruction/output, prompt/result or input/output")
    prompt, output = record[prompt_field], record[output_field]
    for name, value in ((prompt_field, prompt), (output_field, output)):
        if not isinstance(value, str):
            raise _problem(file, line, name, f"expected a string, got {type(value).__name__}")
    if prompt_field == "instruction" and isinstance(record.get("input"), str) and record["input"].strip():
        prompt = f"{prompt}\n{record['input']}"
    prompt = prompt.strip()
    if prompt.startswith(_LANGCHAIN_PREFIX):
        prompt = prompt[len(_LANGCHAIN_PREFIX) :].strip()
    names, side, name = _participants(file, line, prompt_field, prompt)
    context = _between(prompt, _CONTEXT_START, "\n" + _HISTORY_START)
    if context is None:
        raise _problem(file, line, prompt_field, f"no '{_CONTEXT_START}' … '{_HISTORY_START}' block")
    context = (_CONTEXT_START + context).strip()
    fields = _context_fields(context, names)
    scenario = fields.get("Scenario", "")
    if not scenario:
        raise _problem(file, line, prompt_field, "the context has no 'Scenario:' line")
    goal = fields.get(f"{name}'s goal", "")
    if not goal or goal == "Unknown":
        raise _problem(file, line, prompt_field, f"the context shows no goal for {name}")
    at = list(_AT_TURN.finditer(prompt))
    if not at:
        raise _problem(file, line, prompt_field, "no 'You are at Turn #k'")
    turn = int(at[-1].group(1))
    history_text = prompt[prompt.index(_HISTORY_START) + len(_HISTORY_START) : at[-1].start()]
    acts = _history(file, line, prompt_field, history_text, names, turn)
    try:
        action = action_from_dict(parse_json_object(output))
    except UnusableAnswer as exc:
        raise _problem(file, line, output_field, f"not an action: {exc}") from None
    acts.append(Act(side, action.action_type.value, action.argument))
    backgrounds = tuple(_unknown_empty(fields.get(f"{n}'s background", "")) for n in names)
    extra = {k: v for k, v in record.items() if k not in {prompt_field, output_field, "input", "instruction"}}
    return SftRecord(file, line, names, side, scenario, context, backgrounds, goal, turn, acts, extra)  # type: ignore[arg-type]


class SftProblem(ValueError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _problem(file: str, line: int, field_name: str, message: str) -> SftProblem:
    return SftProblem(Problem(file, line, field_name, message))


def _between(text: str, start: str, end: str) -> str | None:
    a = text.find(start)
    if a < 0:
        return None
    b = text.find(end, a)
    return None if b < 0 else text[a + len(start) : b]


def _unknown_empty(text: str) -> str:
    return "" if text.strip() == "Unknown" else text.strip()


def _participants(file: str, line: int, field_name: str, prompt: str) -> tuple[tuple[str, str], int, str]:
    match = _NAME.search(prompt)
    if not match:
        raise _problem(file, line, field_name, "not a SOTOPIA agent prompt: no 'Imagine you are …, your task is'")
    name = match.group("name").strip()
    participants = re.search(r"^Participants: (.+)$", prompt, re.MULTILINE)
    if not participants:
        raise _problem(file, line, field_name, "the context has no 'Participants:' line")
    both = participants.group(1).strip()
    if both.startswith(f"{name} and "):
        return (name, both[len(name) + 5 :].strip()), 0, name
    if both.endswith(f" and {name}"):
        return (both[: -len(name) - 5].strip(), name), 1, name
    raise _problem(file, line, field_name, f"'{name}' is not one of the participants ({both!r})")


def _context_fields(context: str, names: tuple[str, str]) -> dict[str, str]:
    """`Scenario`, `<name>'s background` and `<name>'s goal` (a line each; a line starting with none of these
    continues the previous field)."""
    keys = ["Scenario", "Participants"] + [f"{n}'s {what}" for n in names for what in ("background", "goal")]
    fields: dict[str, str] = {}
    current = None
    for raw in context.splitlines()[1:]:
        key = next((k for k in sorted(keys, key=len, reverse=True) if raw.startswith(f"{k}:")), None)
        if key is not None:
            current = key
            fields[key] = raw[len(key) + 1 :].strip()
        elif current is not None:
            fields[current] = f"{fields[current]}\n{raw}".strip()
    return fields


def _history(file: str, line: int, field_name: str, text: str, names: tuple[str, str], turn: int) -> list[Act]:
    text = re.sub(r"\n\.\s*$", "", text.rstrip())  # SOTOPIA-π closes the history with a line holding "."
    marks = list(_TURN.finditer(text))
    indices = [int(m.group(1)) for m in marks]
    if indices != list(range(turn)):
        shown = ", ".join(f"#{i}" for i in indices[:12]) or "none"
        raise _problem(
            file, line, field_name, f"at turn #{turn} the history should hold turns #0–#{turn - 1}, it holds {shown}"
        )
    acts = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        acts.append(_act(file, line, field_name, text[mark.end() : end].strip(), names, indices[i]))
    return acts


def _act(file: str, line: int, field_name: str, entry: str, names: tuple[str, str], index: int) -> Act:
    if not entry:  # SOTOPIA leaves a turn in which the agent did nothing empty
        return Act(index % 2, "none", "")
    for speaker, name in sorted(enumerate(names), key=lambda p: len(p[1]), reverse=True):
        if not entry.startswith(f"{name} "):
            continue
        rest = entry[len(name) + 1 :]
        if rest.startswith("said:"):
            said = rest[5:].strip()
            if len(said) >= 2 and said[0] == said[-1] == '"':
                said = said[1:-1]
            return Act(speaker, "speak", said)
        for kind in ("non-verbal communication", "action"):
            if rest.startswith(f"[{kind}]"):
                return Act(speaker, kind, rest[len(kind) + 2 :].strip())
        if rest.strip() == "did nothing":
            return Act(speaker, "none", "")
        if rest.strip() == "left the conversation":
            return Act(speaker, "leave", "")
    raise _problem(file, line, field_name, f"turn #{index}: cannot tell who did what in {entry[:80]!r}")


# --- putting records together ---------------------------------------------------------------------------


@dataclass
class SftTask:
    names: tuple[str, str]
    scenario: str
    goals: list[str] = field(default_factory=lambda: ["", ""])
    contexts: list[str] = field(default_factory=lambda: ["", ""])
    backgrounds: list[str] = field(default_factory=lambda: ["", ""])  # each side's own (full) view where known
    seen: list[str] = field(default_factory=lambda: ["", ""])  # as the other side saw it, where the own is missing
    first_line: int = 0
    model: str = ""


@dataclass
class SftDialogue:
    task: tuple[str, str, str]
    key: str  # the hash of the task and every turn: the same dialogue gives the same key in any file
    acts: list[Act]
    lines: list[int] = field(default_factory=list)
    outputs: dict[int, dict[str, Any]] = field(default_factory=dict)  # turn index -> {"line", "extra"}
    sides: set[int] = field(default_factory=set)


_SCHEMA = """
CREATE TABLE node (id INTEGER PRIMARY KEY, hash BLOB UNIQUE, parent INTEGER, task INTEGER, depth INTEGER,
                   speaker INTEGER, action_type TEXT, argument TEXT, leaf INTEGER DEFAULT 1);
CREATE TABLE ending (node INTEGER, line INTEGER, side INTEGER, extra TEXT, claimed INTEGER DEFAULT 0);
CREATE INDEX ending_node ON ending (node);
"""


class Collector:
    """Records in, tasks and dialogues out, with flat memory: the turns go into a prefix tree in a temporary SQLite
    file (one node per distinct turn in its context), each record marking the node where it ends. A dialogue is a
    path from the root to a leaf; a record that ends inside several paths belongs to the first. Tasks (few) stay in
    memory."""

    CACHE = 50_000  # node ids kept in memory for the records that follow (records of a dialogue are near)

    def __init__(self, directory: str | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sft-", dir=directory)
        self.db = sqlite3.connect(f"{self._dir.name}/tree.sqlite3")
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
        self.tasks: dict[tuple[str, str, str], SftTask] = {}
        self._task_ids: dict[tuple[str, str, str], int] = {}
        self._ids: dict[bytes, int] = {}

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()

    def add(self, record: SftRecord) -> None:
        """Add a parsed record; raises SftProblem if it contradicts what earlier records said of its task."""
        key = record.task_key
        task = self.tasks.get(key)
        if task is None:
            task = self.tasks[key] = SftTask(record.names, record.scenario, first_line=record.line)
            self._task_ids[key] = len(self._task_ids)
        side, other = record.side, 1 - record.side
        if task.goals[side] and task.goals[side] != record.goal:
            name = record.names[side]
            raise _problem(record.file, record.line, "(goal)",
                           f"{name}'s goal differs from the one an earlier record gave for this scenario")  # fmt: skip
        task.goals[side] = record.goal
        task.contexts[side] = task.contexts[side] or record.context
        task.backgrounds[side] = task.backgrounds[side] or record.backgrounds[side]
        task.seen[other] = task.seen[other] or record.backgrounds[other]
        task.model = task.model or str(record.extra.get("model", "") or "")
        task_id = self._task_ids[key]
        digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=16).digest()  # the same in any file
        parent = None
        for depth, act in enumerate(record.acts, start=1):
            digest = hashlib.blake2b(
                digest + f"{act.speaker}\x1f{act.action_type}\x1f{act.argument}".encode(), digest_size=16
            ).digest()
            parent = self._node(digest, parent, task_id, depth, act)
        self.db.execute(
            "INSERT INTO ending (node, line, side, extra) VALUES (?, ?, ?, ?)",
            (parent, record.line, side, json.dumps(record.extra, ensure_ascii=False)),
        )

    def _node(self, digest: bytes, parent: int | None, task_id: int, depth: int, act: Act) -> int:
        node = self._ids.get(digest)
        if node is None:
            row = self.db.execute("SELECT id FROM node WHERE hash = ?", (digest,)).fetchone()
            if row is None:
                node = self.db.execute(
                    "INSERT INTO node (hash, parent, task, depth, speaker, action_type, argument) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (digest, parent, task_id, depth, act.speaker, act.action_type, act.argument),
                ).lastrowid
                if parent is not None:
                    self.db.execute("UPDATE node SET leaf = 0 WHERE id = ? AND leaf = 1", (parent,))
            else:
                node = row[0]
            if len(self._ids) >= self.CACHE:
                self._ids.clear()
            self._ids[digest] = node
        return node

    def dialogue_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM node WHERE leaf = 1").fetchone()[0]

    def dialogues(self) -> Iterator[SftDialogue]:
        """One dialogue per leaf, tasks in the order the file first showed them, then leaves in order."""
        keys = {task_id: key for key, task_id in self._task_ids.items()}
        leaves = self.db.execute("SELECT id, hash FROM node WHERE leaf = 1 ORDER BY task, id").fetchall()
        for leaf, digest in leaves:
            path = self.db.execute(
                "WITH RECURSIVE up(id, parent, task, depth, speaker, action_type, argument) AS ("
                " SELECT id, parent, task, depth, speaker, action_type, argument FROM node WHERE id = ?"
                " UNION ALL SELECT n.id, n.parent, n.task, n.depth, n.speaker, n.action_type, n.argument"
                " FROM node n JOIN up ON n.id = up.parent) SELECT * FROM up ORDER BY depth",
                (leaf,),
            ).fetchall()
            dialogue = SftDialogue(
                task=keys[path[0][2]],
                key=digest.hex()[:32],
                acts=[Act(speaker, action_type, argument) for _, _, _, _, speaker, action_type, argument in path],
            )
            ids = [row[0] for row in path]
            marks = ",".join("?" * len(ids))
            endings = self.db.execute(
                f"SELECT e.rowid, n.depth, e.line, e.side, e.extra FROM ending e JOIN node n ON n.id = e.node "
                f"WHERE e.node IN ({marks}) AND (e.claimed = 0 OR e.node = ?) ORDER BY e.line",
                (*ids, leaf),
            ).fetchall()
            for _, depth, line, side, extra in endings:
                dialogue.lines.append(line)
                dialogue.sides.add(side)
                dialogue.outputs.setdefault(depth - 1, {"line": line, "extra": json.loads(extra)})
            self.db.executemany("UPDATE ending SET claimed = 1 WHERE rowid = ?", [(e[0],) for e in endings])
            yield dialogue
