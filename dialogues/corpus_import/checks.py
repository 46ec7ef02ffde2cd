"""Pass 1 of a corpus import: read every record and check it (file, line, field), writing nothing.

The first good record fixes the file's format (unless the job names one). Full-fidelity records are checked field
by field, and their tasks against the library: a task, agent or scenario the library already has must be the same
one (nothing in the library is ever changed). SFT records are parsed and put together into dialogues (in a scratch
SQLite file) so the write pass need not read the file again. The Plan says what the write pass may write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogues.corpora.data import AGENT_FIELDS, SCENARIO_FIELDS, task_facts
from dialogues.corpus_import import full, sft
from dialogues.corpus_import.stream import Item, Reader
from dialogues.library.models import AgentProfile, ImportJob, Scenario, Task
from dialogues.library.sotopia import Problem

FORMATS = {"auto": "recognise from the records", "full": "omega-web full fidelity", "sotopia-sft": "SOTOPIA SFT"}
MAX_PROBLEMS = 200


@dataclass
class Plan:
    """What the check pass found: the format, the bad records (and where they are), and what writing needs."""

    format: str = ""
    problems: list[Problem] = field(default_factory=list)  # every bad record (all kept with skip_bad)
    bad_count: int = 0
    bad: set[tuple[str, int]] = field(default_factory=set)  # (file, line) of bad records
    total: int = 0
    records: int = 0
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # full: task lines by id (facts only)
    known_tasks: set[str] = field(default_factory=set)  # full: task ids already in the library
    collector: sft.Collector | None = None  # SFT: the records put together, on disk


def check(job: ImportJob, path: Path, name: str, progress: Callable[..., None], *, scratch: Path) -> Plan:
    """Read and check every record of the file; SFT records are put together under the `scratch` directory."""
    plan = Plan(format="" if job.format == "auto" else job.format)
    reader = Reader(path, name)
    plan.total = reader.total
    for item in reader.items(lambda done, total: progress("checking", done, total, records=plan.records)):
        plan.records += 1
        problems = [item.problem] if item.problem else _check_record(plan, item, scratch)
        if problems:
            plan.bad_count += 1
            plan.bad.add((item.file, item.line))
            if job.skip_bad or len(plan.problems) < MAX_PROBLEMS:
                plan.problems.extend(problems)
    if plan.records == 0:
        plan.problems.append(Problem(name, None, "(file)", "no records in the file"))
        plan.bad_count += 1
    progress("checking", plan.total, plan.total, force=True, records=plan.records)
    return plan


def _check_record(plan: Plan, item: Item, scratch: Path) -> list[Problem]:
    record = item.value or {}
    kind = "full" if full.is_full(record) else "sotopia-sft" if sft.is_sft(record) else None
    if kind is None:
        return [_bad(item, "(record)", _shape_message(record))]
    if not plan.format:
        plan.format = kind
    if kind != plan.format:
        what = FORMATS[plan.format]
        return [_bad(item, "(record)", f"a {FORMATS[kind]} record in a file of {what} records")]
    if kind == "sotopia-sft":
        if plan.collector is None:
            plan.collector = sft.Collector(str(scratch))
        try:
            plan.collector.add(sft.parse(item.file, item.line, record))
        except sft.SftProblem as exc:
            return [exc.problem]
        return []
    problems = full.check_schema(item.file, item.line, record)
    if problems:
        return problems
    if record["type"] == "task":
        problems = full.check_task(item.file, item.line, record)
        if not problems:
            problems = _check_task_against_library(item, record, plan)
        return problems
    problems = full.check_dialogue(item.file, item.line, record)
    task_id = record.get("task")
    if not problems and task_id not in plan.tasks and task_id not in plan.known_tasks:
        if Task.objects.filter(external_id=task_id).exists():
            plan.known_tasks.add(task_id)
        else:
            problems = [
                _bad(item, "task", f"unknown task {task_id!r}: not on an earlier line of the file, nor in the library")
            ]
    return problems


def _bad(item: Item, field_name: str, message: str) -> Problem:
    return Problem(item.file, item.line, field_name, message)


def _shape_message(record: dict[str, Any]) -> str:
    keys = ", ".join(sorted(record)[:8]) or "none"
    return (
        f"not a record this importer reads (fields: {keys}); expected an omega-web full-fidelity record "
        "('schema': 'omega-web/full/…') or an SFT record (instruction/output, prompt/result or input/output)"
    )


def _task_line_facts(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("schema", "type")}


def _check_task_against_library(item: Item, record: dict[str, Any], plan: Plan) -> list[Problem]:
    """A task already in the library must be the same task (and a new task's agents and scenario, if the library
    has them, the same ones); a task line repeated in the file too. Nothing in the library is ever changed."""
    facts = _task_line_facts(record)
    task_id = facts["external_id"]
    if task_id in plan.tasks:
        if plan.tasks[task_id] != facts:
            return [_bad(item, "external_id", f"task {task_id!r} appears twice with different content")]
        return []
    existing = Task.objects.select_related("scenario", "agent1", "agent2").filter(external_id=task_id).first()
    if existing is not None:
        pairs = [("", f"task {task_id!r}", task_facts(existing), facts)]
    else:
        scenario = facts["profiles"]["scenario"]
        pairs = [
            (f"profiles.agents[{i}].", f"agent {agent['external_id']!r}", other, agent)
            for i, agent in enumerate(facts["profiles"]["agents"])
            if (other := _library_values(AgentProfile, agent["external_id"], AGENT_FIELDS)) is not None
        ]
        if (other := _library_values(Scenario, scenario["external_id"], SCENARIO_FIELDS)) is not None:
            pairs.append(("profiles.scenario.", f"scenario {scenario['external_id']!r}", other, scenario))
    for prefix, what, ours, theirs in pairs:
        found = _first_difference(ours, theirs)
        if found is not None:
            path, here, there = found
            message = f"{what} is in the library with {_short_value(here)} here, the file says {_short_value(there)}"
            return [_bad(item, f"{prefix}{path}", f"{message}; nothing was changed")]
    plan.tasks[task_id] = facts
    return []


def _library_values(model: Any, external_id: str, names: tuple[str, ...]) -> dict[str, Any] | None:
    row = model.objects.filter(external_id=external_id).first()
    return None if row is None else {name: getattr(row, name) for name in names}


def _short_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _first_difference(ours: Any, theirs: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The path of the first value that differs, with both values (None when equal)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs)):
            found = _first_difference(ours.get(key), theirs.get(key), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if ours == theirs else (path or "(value)", ours, theirs)
