"""Read and check SOTOPIA profile files before anything touches the database.

A profile set is up to five files: agent profiles, environment profiles (scenarios), relationship profiles,
env-agent combos (tasks) and the hard subset. `read_profile_set` returns clean records or raises
`ImportRejected` listing every problem with its file, line and field. References between files (and to rows
already in the library, through `known`) are checked too, so a rejected set imports nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogues.engine.context import RelationshipType
from dialogues.library.jsonpos import Located, loads_located

RELATIONSHIP_CODES = {r.value for r in RelationshipType}
MAX_PROBLEMS = 200

# kind -> (substring that identifies the file name, description)
FILE_KINDS: dict[str, tuple[str, str]] = {
    "agents": ("agent_profiles", "agent profiles (JSONL)"),
    "scenarios": ("environment_profiles", "environment profiles / scenarios (JSONL)"),
    "relationships": ("relationship_profiles", "relationship profiles (JSONL)"),
    "tasks": ("env_agent_combo", "env-agent combos / tasks (JSONL)"),
    "hard": ("hard_subset", "hard subset (JSON)"),
}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        return f"{where}, field '{self.field}': {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class ImportRejected(Exception):
    """Nothing was imported: every problem found, each with its file, line and field. Every importer raises it (or
    a subclass); `counts` holds what the importer counted before it gave up, if anything."""

    def __init__(self, problems: list[Problem], *, counts: dict[str, int] | None = None, message: str = "") -> None:
        self.problems = problems
        self.counts = counts or {}
        if not message:
            shown = "\n".join(f"  {p}" for p in problems[:20])
            more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
            message = f"Nothing was imported; {len(problems)} problem(s):\n{shown}{more}"
        super().__init__(message)


@dataclass
class Record:
    """One checked row: the external id, its line, and its fields ready for the database."""

    external_id: str
    line: int
    values: dict[str, Any]
    refs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProfileSet:
    agents: list[Record] = field(default_factory=list)
    scenarios: list[Record] = field(default_factory=list)
    relationships: list[Record] = field(default_factory=list)
    tasks: list[Record] = field(default_factory=list)
    hard_task_ids: set[str] | None = None  # None: no hard-subset file given
    hard_scenario_ids: set[str] | None = None


# --- field checks --------------------------------------------------------------------------------------


class _Checker:
    """Collects problems for one file."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def add(self, line: int | None, field_name: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, field_name, message))

    def text(self, row: dict, name: str, line: int, *, required: bool = True, non_empty: bool = False) -> str:
        if name not in row:
            if required:
                self.add(line, name, "missing field")
            return ""
        value = row[name]
        if not isinstance(value, str):
            self.add(line, name, f"expected a string, got {type_name(value)}")
            return ""
        if non_empty and not value.strip():
            self.add(line, name, "must not be empty")
        return value.strip()

    def integer(self, row: dict, name: str, line: int, *, low: int, high: int) -> int:
        if name not in row:
            self.add(line, name, "missing field")
            return 0
        value = row[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(line, name, f"expected an integer, got {type_name(value)}")
            return 0
        if not low <= value <= high:
            self.add(line, name, f"must be between {low} and {high}, got {value}")
        return value

    def string_list(self, row: dict, name: str, line: int, *, required: bool = False) -> list[str]:
        if name not in row:
            if required:
                self.add(line, name, "missing field")
            return []
        value = row[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(line, name, f"expected a list of strings, got {type_name(value)}")
            return []
        return [v.strip() for v in value]

    def relationship(self, row: dict, name: str, line: int) -> str:
        if name not in row:
            self.add(line, name, "missing field")
            return ""
        value = row[name]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.add(line, name, f'expected a relationship code "0"-"5", got {type_name(value)}')
            return ""
        if value.strip() not in RELATIONSHIP_CODES:
            self.add(line, name, f'unknown relationship code {value!r} (expected "0"-"5")')
            return ""
        return value.strip()


def type_name(value: Any) -> str:
    """How a problem names the JSON type it found ("an object", "a list", "null", ...)."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


# --- reading files -------------------------------------------------------------------------------------


def _decode(name: str, data: bytes, problems: list[Problem]) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.append(
            Problem(name, line, "(encoding)", f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {column}")
        )
        return None


def _jsonl_rows(name: str, text: str, problems: list[Problem]) -> list[tuple[int, dict]]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(Problem(name, number, "(json)", f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(row, dict):
            problems.append(Problem(name, number, "(record)", f"expected a JSON object, got {type_name(row)}"))
            continue
        rows.append((number, row))
    return rows


def _unique_id(check: _Checker, row: dict, name: str, line: int, seen: dict[str, int]) -> str:
    value = check.text(row, name, line, non_empty=True)
    if value and value in seen:
        check.add(line, name, f"duplicate id {value!r}, already on line {seen[value]}")
        return ""
    if value:
        seen[value] = line
    return value


def _read_agents(name: str, rows: list[tuple[int, dict]], problems: list[Problem]) -> list[Record]:
    check, seen, records = _Checker(name, problems), {}, []
    for line, row in rows:
        external_id = _unique_id(check, row, "agent_id", line, seen)
        values = {
            "first_name": check.text(row, "first_name", line, non_empty=True),
            "last_name": check.text(row, "last_name", line),
            "age": check.integer(row, "age", line, low=0, high=150),
            "occupation": check.text(row, "occupation", line),
            "gender": check.text(row, "gender", line),
            "gender_pronoun": check.text(row, "gender_pronoun", line),
            "public_info": check.text(row, "public_info", line),
            "personality_and_values": check.text(row, "personality_and_values", line),
            "secret": check.text(row, "secret", line),
            "big_five": check.text(row, "big_five", line, required=False),
            "moral_values": check.string_list(row, "moral_values", line),
            "schwartz_personal_values": check.string_list(row, "schwartz_personal_values", line),
            "decision_making_style": check.text(row, "decision_making_style", line, required=False),
            "mbti": check.text(row, "mbti", line, required=False),
        }
        records.append(Record(external_id, line, values))
    return records


def _read_scenarios(name: str, rows: list[tuple[int, dict]], problems: list[Problem]) -> list[Record]:
    check, seen, records = _Checker(name, problems), {}, []
    for line, row in rows:
        external_id = _unique_id(check, row, "env_id", line, seen)
        goals: list[str] = []
        if "agent_goals" not in row:
            check.add(line, "agent_goals", "missing field")
        elif not isinstance(row["agent_goals"], list) or not all(isinstance(g, str) for g in row["agent_goals"]):
            check.add(line, "agent_goals", f"expected a list of two strings, got {type_name(row['agent_goals'])}")
        elif len(row["agent_goals"]) != 2 or not all(g.strip() for g in row["agent_goals"]):
            given = [g for g in row["agent_goals"] if g.strip()]
            check.add(line, "agent_goals", f"a scenario needs exactly two non-empty goals, got {len(given)}")
        else:
            goals = [g.strip() for g in row["agent_goals"]]
        values = {
            "codename": check.text(row, "codename", line, non_empty=True),
            "source": check.text(row, "source", line, required=False),
            "text": check.text(row, "scenario", line, non_empty=True),
            "agent1_goal": goals[0] if goals else "",
            "agent2_goal": goals[1] if goals else "",
            "relationship": check.relationship(row, "relationship", line),
            "age_constraint": check.text(row, "age_constraint", line, required=False),
            "occupation_constraint": check.text(row, "occupation_constraint", line, required=False),
            "agent_constraint": check.text(row, "agent_constraint", line, required=False),
        }
        records.append(Record(external_id, line, values))
    return records


def _read_relationships(name: str, rows: list[tuple[int, dict]], problems: list[Problem]) -> list[Record]:
    check, seen, records = _Checker(name, problems), {}, []
    for line, row in rows:
        external_id = _unique_id(check, row, "relationship_id", line, seen)
        refs = {
            "agent1_id": check.text(row, "agent1_id", line, non_empty=True),
            "agent2_id": check.text(row, "agent2_id", line, non_empty=True),
        }
        values = {
            "relationship": check.relationship(row, "relationship", line),
            "background_story": check.text(row, "background_story", line, required=False),
        }
        records.append(Record(external_id, line, values, refs))
    return records


def _read_tasks(name: str, rows: list[tuple[int, dict]], problems: list[Problem]) -> list[Record]:
    check, seen, records = _Checker(name, problems), {}, []
    for line, row in rows:
        external_id = _unique_id(check, row, "combo_id", line, seen)
        env_id = check.text(row, "env_id", line, non_empty=True)
        agent_ids = check.string_list(row, "agent_ids", line, required=True)
        if "agent_ids" in row and isinstance(row["agent_ids"], list) and len(row["agent_ids"]) != 2:
            check.add(line, "agent_ids", f"a task needs exactly two agents, got {len(row['agent_ids'])}")
        refs = {"env_id": env_id, "agent_ids": agent_ids if len(agent_ids) == 2 else []}
        records.append(Record(external_id, line, {}, refs))
    return records


def _read_hard(name: str, text: str, problems: list[Problem], profile: ProfileSet) -> dict[str, int]:
    """Fills profile.hard_task_ids / hard_scenario_ids; returns the line of each id for reference checks."""
    check = _Checker(name, problems)
    try:
        doc: Located = loads_located(text)
    except json.JSONDecodeError as exc:
        check.add(exc.lineno, "(json)", f"invalid JSON: {exc.msg} (column {exc.colno})")
        return {}
    root = doc.value
    if not isinstance(root, dict):
        check.add(1, "(document)", f"expected a JSON object with 'hard_combos', got {type_name(root)}")
        return {}
    if "hard_combos" not in root and "hard_env_ids" not in root:
        check.add(1, "hard_combos", "missing field (give 'hard_combos' or 'hard_env_ids')")
        return {}
    lines: dict[str, int] = {}
    if "hard_combos" in root:
        combos = root["hard_combos"]
        if not isinstance(combos, list):
            check.add(doc.line_of(root), "hard_combos", f"expected a list, got {type_name(combos)}")
        else:
            profile.hard_task_ids = set()
            for index, item in enumerate(combos):
                line = doc.line_of(item, doc.line_of(combos))
                where = f"hard_combos[{index}].combo_id"
                if isinstance(item, str):  # a plain list of combo ids is accepted too
                    item = {"combo_id": item}
                    line = doc.line_of_literal(item["combo_id"], combos)
                if not isinstance(item, dict):
                    check.add(line, f"hard_combos[{index}]", f"expected an object, got {type_name(item)}")
                    continue
                if "combo_id" not in item:
                    check.add(line, where, "missing field")
                    continue
                combo_id = check.text(item, "combo_id", line, non_empty=True)
                if combo_id:
                    profile.hard_task_ids.add(combo_id)
                    lines.setdefault(f"task:{combo_id}", doc.line_of_literal(item["combo_id"], item))
    if "hard_env_ids" in root:
        env_ids = root["hard_env_ids"]
        if not isinstance(env_ids, list) or not all(isinstance(e, str) for e in env_ids):
            check.add(
                doc.line_of(env_ids) if isinstance(env_ids, list) else 1,
                "hard_env_ids",
                "expected a list of strings",
            )
        else:
            profile.hard_scenario_ids = {e.strip() for e in env_ids}
            for env_id in env_ids:
                lines.setdefault(f"scenario:{env_id.strip()}", doc.line_of_literal(env_id, env_ids))
    return lines


# --- the whole set -------------------------------------------------------------------------------------


def classify(file_name: str) -> str | None:
    lowered = file_name.lower()
    for kind, (marker, _) in FILE_KINDS.items():
        if marker in lowered:
            return kind
    return None


def discover(directory: Path) -> dict[str, Path]:
    """The profile files in a directory, by kind. Other files are ignored."""
    if not directory.is_dir():
        raise ImportRejected([Problem(str(directory), None, "(directory)", "not a directory")])
    found: dict[str, Path] = {}
    problems = []
    for path in sorted(directory.iterdir()):
        kind = classify(path.name)
        if kind is None or not path.is_file():
            continue
        if kind in found:
            problems.append(
                Problem(
                    path.name,
                    None,
                    "(file)",
                    f"a second {FILE_KINDS[kind][1]} file besides {found[kind].name}",
                )
            )
        found[kind] = path
    if problems:
        raise ImportRejected(problems)
    if not found:
        expected = ", ".join(f"*{marker}*" for marker, _ in FILE_KINDS.values())
        raise ImportRejected([Problem(str(directory), None, "(directory)", f"no profile files found ({expected})")])
    return found


@dataclass
class KnownIds:
    """Ids already in the library, for references the files themselves do not define."""

    agents: Callable[[Iterable[str]], set[str]] = lambda ids: set()
    scenarios: Callable[[Iterable[str]], set[str]] = lambda ids: set()
    tasks: Callable[[Iterable[str]], set[str]] = lambda ids: set()


def read_profile_set(files: dict[str, tuple[str, bytes]], known: KnownIds | None = None) -> ProfileSet:
    """Check a profile set given as {kind: (file name, raw bytes)}; raise ImportRejected on any problem."""
    known = known or KnownIds()
    problems: list[Problem] = []
    unknown_kinds = set(files) - set(FILE_KINDS)
    if unknown_kinds:
        raise ValueError(f"unknown file kinds {sorted(unknown_kinds)}")
    profile = ProfileSet()
    readers = {
        "agents": _read_agents,
        "scenarios": _read_scenarios,
        "relationships": _read_relationships,
        "tasks": _read_tasks,
    }
    names = {kind: name for kind, (name, _) in files.items()}
    hard_lines: dict[str, int] = {}
    flawed: set[str] = set()  # kinds whose file had problems: references to them are checked once it is fixed
    for kind, (name, data) in files.items():
        before = len(problems)
        text = _decode(name, data, problems)
        if text is not None:
            if kind == "hard":
                hard_lines = _read_hard(name, text, problems, profile)
            else:
                setattr(profile, kind, readers[kind](name, _jsonl_rows(name, text, problems), problems))
        if len(problems) > before:
            flawed.add(kind)
    _check_references(profile, names, hard_lines, known, problems, skip=flawed)
    if problems:
        problems.sort(key=lambda p: (p.file, p.line or 0))
        if len(problems) > MAX_PROBLEMS:
            extra = len(problems) - MAX_PROBLEMS
            problems = [
                *problems[:MAX_PROBLEMS],
                Problem("(all files)", None, "(more)", f"{extra} more problems"),
            ]
        raise ImportRejected(problems)
    return profile


def _check_references(
    profile: ProfileSet,
    names: dict[str, str],
    hard_lines: dict[str, int],
    known: KnownIds,
    problems: list[Problem],
    *,
    skip: set[str],
) -> None:
    """Report references to ids that are neither in the files nor in the library. References to a kind whose
    own file had problems are not judged yet (not all its ids are known); empty references were reported."""

    def resolver(in_files: set[str], lookup: Callable[[Iterable[str]], set[str]], wanted: set[str]) -> set[str]:
        return in_files | lookup(wanted - in_files)

    agent_refs = {r.refs[k] for r in profile.relationships for k in ("agent1_id", "agent2_id")}
    agent_refs |= {a for r in profile.tasks for a in r.refs["agent_ids"]}
    agents = resolver({r.external_id for r in profile.agents}, known.agents, agent_refs)
    scenario_refs = {r.refs["env_id"] for r in profile.tasks} | (profile.hard_scenario_ids or set())
    scenarios = resolver({r.external_id for r in profile.scenarios}, known.scenarios, scenario_refs)
    tasks = resolver({r.external_id for r in profile.tasks}, known.tasks, profile.hard_task_ids or set())

    def unknown(kind: str, ref: str, known_ids: set[str]) -> bool:
        return kind not in skip and bool(ref) and ref not in known_ids

    def report(kind: str, line: int | None, field_name: str, message: str) -> None:
        problems.append(Problem(names[kind], line, field_name, message))

    for record in profile.relationships:
        for key in ("agent1_id", "agent2_id"):
            if unknown("agents", record.refs[key], agents):
                report("relationships", record.line, key, f"unknown agent id {record.refs[key]!r}")
    for record in profile.tasks:
        if unknown("scenarios", record.refs["env_id"], scenarios):
            report("tasks", record.line, "env_id", f"unknown scenario (env) id {record.refs['env_id']!r}")
        for agent_id in record.refs["agent_ids"]:
            if unknown("agents", agent_id, agents):
                report("tasks", record.line, "agent_ids", f"unknown agent id {agent_id!r}")
    for task_id in sorted(profile.hard_task_ids or ()):
        if unknown("tasks", task_id, tasks):
            report("hard", hard_lines.get(f"task:{task_id}"), "hard_combos", f"unknown task (combo) id {task_id!r}")
    for env_id in sorted(profile.hard_scenario_ids or ()):
        if unknown("scenarios", env_id, scenarios):
            report(
                "hard", hard_lines.get(f"scenario:{env_id}"), "hard_env_ids", f"unknown scenario (env) id {env_id!r}"
            )
