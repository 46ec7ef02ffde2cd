"""Importing dialogue corpora made elsewhere: omega-web full-fidelity exports and SOTOPIA SFT files.

An import is an ImportJob of kind `corpus` that reads one file on disk in two passes:

1. **Check**: every record is read and checked (file, line, field); nothing is written. With problems and without
   "skip bad records" the job fails here and nothing is imported. With it, every bad record is listed as skipped.
2. **Write**: the good records are written in chunks, each its own transaction, so that the web app and other
   workers keep writing meanwhile. Everything the import creates is recorded on the job; if writing fails part-way
   (a lost database, a bug), those rows are removed again and the job says why: an import lands whole or not at all.

Full-fidelity records are read as a stream both times (memory holds one record). SFT records are put together
into dialogues in memory first, keeping each distinct turn once, so memory follows the corpus's distinct content
rather than the file's size (SFT files repeat every history in every later record).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from dialogues.corpora.data import AGENT_FIELDS, SCENARIO_FIELDS, _task_facts
from dialogues.corpus_import import full, sft
from dialogues.corpus_import.stream import Item, Reader
from dialogues.engine.context import RelationshipType, background_seen_by_other, full_background, render_for
from dialogues.library import events
from dialogues.library.models import AgentProfile, ImportJob, ImportKind, Scenario, Split, Task
from dialogues.library.selectors import profile_of
from dialogues.library.sotopia import Problem
from dialogues.runs.keys import local_dialogue_id
from dialogues.runs.models import Branch, Dialogue, DialogueStatus, LLMCall, Run, RunKind, RunStatus, StepRating, Turn

logger = logging.getLogger(__name__)

FORMATS = {"auto": "recognise from the records", "full": "omega-web full fidelity", "sotopia-sft": "SOTOPIA SFT"}
MAX_PROBLEMS = 200
CHUNK = 200
PROGRESS_EVERY = 0.5  # seconds between progress saves


# --- jobs ----------------------------------------------------------------------------------------------------


def import_dir() -> Path:
    path = Path(settings.OMEGA_IMPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(name: str) -> Path:
    """Where an uploaded corpus file is kept until its import has run."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    return import_dir() / f"{stamp}-{get_valid_filename(Path(name).name) or 'corpus'}"


def corpus_import_create(
    *,
    created_by: Any,
    origin: str,
    path: Path,
    name: str | None = None,
    format: str = "auto",
    skip_bad: bool = False,
    split: str = Split.TRAIN,
    enqueue: bool,
) -> ImportJob:
    """Record an import of the corpus file at `path`; with enqueue, a worker runs it after commit."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if split not in Split.values:
        raise ValueError(f"split must be one of {Split.values}")
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with transaction.atomic():
        job = ImportJob.objects.create(
            created_by=created_by,
            origin=origin,
            kind=ImportKind.CORPUS,
            format=format,
            path=str(path),
            skip_bad=skip_bad,
            split=split,
            source="imported",
            files=[{"kind": "corpus", "name": name or path.name, "bytes": path.stat().st_size}],
        )
        if enqueue:
            from dialogues.library.tasks import import_job_run_task

            transaction.on_commit(lambda: import_job_run_task.delay(job.pk))
    return job


class _Progress:
    """Saves the job's progress now and then and pushes it to its page."""

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int, *, force: bool = False, **more: int) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        self.job.progress = {"phase": phase, "done": done, "total": total, **more}
        ImportJob.objects.filter(pk=self.job.pk).update(progress=self.job.progress)
        events.import_job_changed(self.job)


def corpus_import_run(job: ImportJob) -> None:
    """Both passes of a claimed corpus import (dialogues.library.services.import_job_run claims it and records
    the outcome). Raises CorpusRejected when nothing may be imported."""
    progress = _Progress(job)
    if job.created:  # a worker died while writing it before: start over from nothing
        corpus_import_undo(job)
    name = job.files[0]["name"] if job.files else Path(job.path).name
    path = Path(job.path)
    if not path.is_file():
        raise CorpusRejected([Problem(name, None, "(file)", "the file is gone (was it moved or deleted?)")])
    job.files = [{**job.files[0], "sha256": _sha256(path)}] if job.files else []
    plan = _check(job, path, name, progress)
    if plan.problems and not job.skip_bad:
        if plan.collector is not None:
            plan.collector.close()
        raise CorpusRejected(plan.problems, plan.bad_count, plan.records)
    job.skipped = [p.as_dict() for p in plan.problems]
    job.format = plan.format
    try:
        writer = _FullWriter(job, plan) if plan.format == "full" else _SftWriter(job, plan)
        job.counts = writer.write(path, name, progress)
    except Exception:
        corpus_import_undo(job)
        raise
    finally:
        if plan.collector is not None:
            plan.collector.close()
    Run.objects.filter(import_job=job, status=RunStatus.IMPORTING).update(status=RunStatus.FINISHED)
    progress("done", plan.total, plan.total, force=True)


def corpus_import_forget_upload(job: ImportJob) -> None:
    """An uploaded file is removed once its import has finished (files named on the command line are the user's)."""
    path = Path(job.path)
    if job.origin == "upload" and path.parent == import_dir():
        path.unlink(missing_ok=True)


def corpus_import_undo(job: ImportJob) -> None:
    """Remove what a failed import created (its dialogues, then runs, tasks, scenarios and agents it made)."""
    created = ImportJob.objects.values_list("created", flat=True).get(pk=job.pk) or {}
    with transaction.atomic():
        Dialogue.objects.filter(import_job=job).delete()
        Run.objects.filter(pk__in=created.get("runs", [])).delete()
        Task.objects.filter(pk__in=created.get("tasks", []), dialogues__isnull=True).delete()
        Scenario.objects.filter(pk__in=created.get("scenarios", []), tasks__isnull=True).delete()
        AgentProfile.objects.filter(
            pk__in=created.get("agents", []), tasks_as_agent1__isnull=True, tasks_as_agent2__isnull=True
        ).delete()
        ImportJob.objects.filter(pk=job.pk).update(created={})


class CorpusRejected(Exception):
    def __init__(self, problems: list[Problem], bad_count: int | None = None, records: int = 0) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        self.bad_count = bad_count if bad_count is not None else len(problems)
        self.counts = {"records": records, "skipped": self.bad_count, "good": max(records - self.bad_count, 0)}
        more = self.bad_count - len(self.problems)
        if more > 0:
            self.problems.append(Problem("(file)", None, "(more)", f"{more} more bad records not listed"))
        super().__init__(f"Nothing was imported; {self.bad_count} bad record(s)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


# --- pass 1: check -------------------------------------------------------------------------------------------


@dataclass
class Plan:
    format: str = ""
    problems: list[Problem] = field(default_factory=list)  # every bad record (all kept with skip_bad)
    bad_count: int = 0
    bad: set[tuple[str, int]] = field(default_factory=set)  # (file, line) of bad records
    total: int = 0
    records: int = 0
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # full: task lines by id (facts only)
    known_tasks: set[str] = field(default_factory=set)  # full: task ids already in the library
    collector: sft.Collector | None = None  # SFT: the records put together, on disk


def _check(job: ImportJob, path: Path, name: str, progress: Callable[..., None]) -> Plan:
    plan = Plan(format="" if job.format == "auto" else job.format)
    reader = Reader(path, name)
    plan.total = reader.total
    for item in reader.items(lambda done, total: progress("checking", done, total, records=plan.records)):
        plan.records += 1
        problems = [item.problem] if item.problem else _check_record(plan, item)
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


def _check_record(plan: Plan, item: Item) -> list[Problem]:
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
            plan.collector = sft.Collector(str(import_dir()))
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
        pairs = [("", f"task {task_id!r}", _task_facts(existing), facts)]
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


# --- pass 2: write -------------------------------------------------------------------------------------------


class _Writer:
    def __init__(self, job: ImportJob, plan: Plan) -> None:
        self.job = job
        self.plan = plan
        self.created: dict[str, list[int]] = {"runs": [], "tasks": [], "scenarios": [], "agents": []}
        self.counts = {
            "records": plan.records,
            "skipped": plan.bad_count,
            "dialogues": 0,
            "already_here": 0,
            "turns": 0,
            "tasks_created": 0,
            "tasks_reused": 0,
            "runs": 0,
            "eval_split": 0,
        }
        self.runs: dict[str, Run] = {}

    def _counted(self, task: Task, turns: int) -> None:
        self.counts["dialogues"] += 1
        self.counts["turns"] += turns
        self.counts["eval_split"] += task.split == Split.EVAL

    def _here(self, keys: list[str]) -> set[str]:
        """Which of these dialogue keys are here already: imported before under that key, or made here and not
        deleted since (a deleted one is restored from its export). One query per chunk."""
        here = set(Dialogue.objects.filter(external_key__in=keys).values_list("external_key", flat=True))
        local = {pk: key for key in keys if (pk := local_dialogue_id(key)) is not None}
        made_here = Dialogue.objects.filter(pk__in=list(local), external_key="").values_list("pk", flat=True)
        return here | {local[pk] for pk in made_here}

    def _remember(self, kind: str, pk: int) -> None:
        self.created[kind].append(pk)

    def _save_created(self) -> None:
        ImportJob.objects.filter(pk=self.job.pk).update(created=self.created)

    def _run(self, key: str, **values: Any) -> Run:
        """The run imported dialogues of `key` go into: one imported before under the same key, or a new one."""
        if key in self.runs:
            return self.runs[key]
        run = Run.objects.filter(kind=RunKind.IMPORTED, external_key=key).first() if key else None
        if run is None:
            run = Run.objects.create(
                kind=RunKind.IMPORTED,
                external_key=key,
                import_job=self.job,
                status=RunStatus.IMPORTING,
                backend="import",
                config={},
                **values,
            )
            self._remember("runs", run.pk)
            self.counts["runs"] += 1
        self.runs[key] = run
        return run

    def _agent(self, values: dict[str, Any]) -> AgentProfile:
        agent = AgentProfile.objects.filter(external_id=values["external_id"]).first()
        if agent is None:
            agent = AgentProfile.objects.create(**values)
            self._remember("agents", agent.pk)
        return agent

    def _scenario(self, values: dict[str, Any]) -> Scenario:
        scenario = Scenario.objects.filter(external_id=values["external_id"]).first()
        if scenario is None:
            scenario = Scenario.objects.create(**values)
            self._remember("scenarios", scenario.pk)
        return scenario


class _FullWriter(_Writer):
    def write(self, path: Path, name: str, progress: Callable[..., None]) -> dict[str, int]:
        tasks: dict[str, Task] = {}
        pending: list[dict[str, Any]] = []
        reader = Reader(path, name)

        def flush() -> None:
            with transaction.atomic():
                here = self._here([record["key"] for record in pending])
                for record in pending:
                    self._dialogue(record, tasks, here)
                self._save_created()
            pending.clear()

        for item in reader.items(
            lambda done, total: progress("writing", done, total, dialogues=self.counts["dialogues"])
        ):
            if item.problem or (item.file, item.line) in self.plan.bad:
                continue
            record = item.value or {}
            if record.get("type") == "task":
                with transaction.atomic():
                    tasks[record["external_id"]] = self._task(record)
                    self._save_created()
                continue
            pending.append(record)
            if len(pending) >= CHUNK:
                flush()
        flush()
        return self.counts

    def _task(self, record: dict[str, Any]) -> Task:
        existing = Task.objects.filter(external_id=record["external_id"]).first()
        if existing is not None:
            self.counts["tasks_reused"] += 1
            return existing
        profiles = record["profiles"]
        agents = [self._agent(dict(a)) for a in profiles["agents"]]
        task = Task.objects.create(
            external_id=record["external_id"],
            scenario=self._scenario(dict(profiles["scenario"])),
            agent1=agents[0],
            agent2=agents[1],
            hard=record["hard"],
            source=record["source"],
            split=record["split"],
            contexts=record.get("contexts") or {},
        )
        self._remember("tasks", task.pk)
        self.counts["tasks_created"] += 1
        return task

    def _dialogue(self, record: dict[str, Any], tasks: dict[str, Task], here: set[str]) -> None:
        key = record["key"]
        if key in here:
            self.counts["already_here"] += 1
            return
        here.add(key)
        task = tasks.get(record["task"])
        if task is None:
            task = tasks[record["task"]] = Task.objects.get(external_id=record["task"])
        run_info = record["run"]
        run = self._run(
            run_info["key"],
            name=run_info["name"],
            variant=run_info["variant"],
            model=run_info["model"],
            prompt_set_version=run_info["prompt_set_version"],
            simulated=run_info["simulated"],
        )
        run.tasks.add(task)
        turns = record["turns"]
        calls = record.get("llm_calls") or []
        dialogue = Dialogue.objects.create(
            run=run,
            task=task,
            attempt=record["attempt"],
            status=DialogueStatus.FINISHED,
            seed=record["seed"],
            simulated=record["simulated"],
            kept=record["kept"],
            filter_passed=record["filter_passed"],
            filter_note=record["filter_note"],
            final_goal_c=record["final_goal_c"],
            final_goal_p=record["final_goal_p"],
            nsi_used=record["nsi_used"],
            ssi_used=any(t["branch"] == Branch.SSI for t in turns),
            turns_count=len(turns),
            end_reason=record["end_reason"],
            external_key=key,
            import_job=self.job,
            imported={
                "source": record.get("source"),
                "decisions": record["decisions"],
                "adjudication": record["adjudication"],
            },
            calls_count=len(calls),
            tokens=sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls),
        )
        rows = Turn.objects.bulk_create(
            Turn(
                dialogue=dialogue,
                index=t["index"],
                speaker=t["speaker"],
                action_type=t["action_type"],
                argument=t["argument"],
                forced=t["forced"],
                branch=t["branch"],
                reason=t["reason"],
                nsi_step=t["nsi_step"],
                proposal=t["proposal"],
                draft=t["draft"],
                own_utility=t["own_utility"],
                other_utility=t["other_utility"],
                human=t["human"],
                imported={
                    "annotations": t["annotations"],
                    "corrected": t["corrected"],
                    "correction_reason": t["correction_reason"],
                    "extra": t.get("extra"),
                },
            )
            for t in turns
        )
        StepRating.objects.bulk_create(
            StepRating(
                turn=row,
                dialogue=dialogue,
                **{
                    k: t["rating"][k]
                    for k in ("samples", "rejected", "requested", "valid", "goal_c", "goal_p", "terminate", "closing")
                },
            )
            for row, t in zip(rows, turns, strict=True)
            if t["rating"] is not None
        )
        LLMCall.objects.bulk_create(
            LLMCall(
                dialogue=dialogue,
                step_attempt=0,
                **{
                    k: c.get(k)
                    for k in (
                        "turn_index",
                        "purpose",
                        "messages",
                        "params",
                        "responses",
                        "parsed",
                        "error",
                        "prompt_tokens",
                        "completion_tokens",
                        "model",
                    )
                },
            )
            for c in calls
        )
        self._counted(task, len(turns))


class _SftWriter(_Writer):
    def write(self, path: Path, name: str, progress: Callable[..., None]) -> dict[str, int]:
        collector = self.plan.collector
        model = next((t.model for t in collector.tasks.values() if t.model), "")
        tasks: dict[tuple[str, str, str], Task] = {}
        attempts: dict[int, int] = {}
        total, done = collector.dialogue_count(), 0
        pending: list[sft.SftDialogue] = []

        def flush() -> None:
            with transaction.atomic():
                keys = [_sft_dialogue_key(collector.tasks[d.task], d) for d in pending]
                here = self._here(keys)
                for d, key in zip(pending, keys, strict=True):
                    if key in here:
                        self.counts["already_here"] += 1
                        continue
                    here.add(key)
                    if d.task not in tasks:
                        tasks[d.task] = self._sft_task(collector.tasks[d.task])
                    task = tasks[d.task]
                    run = self._run("", name=f"Imported: {name}"[:200], variant="", model=model,
                                    prompt_set_version="", simulated=False)  # fmt: skip
                    run.tasks.add(task)
                    if task.pk not in attempts:
                        attempts[task.pk] = run.dialogues.filter(task=task).count()
                    self._sft_dialogue(run, task, attempts[task.pk], d, name, key)
                    attempts[task.pk] += 1
                self._save_created()
            pending.clear()
            progress("writing", done, total, dialogues=self.counts["dialogues"])

        for d in collector.dialogues():
            pending.append(d)
            done += 1
            if len(pending) >= CHUNK:
                flush()
        flush()
        return self.counts

    def _sft_dialogue(self, run: Run, task: Task, attempt: int, d: sft.SftDialogue, name: str, key: str) -> None:
        acts = d.acts
        dialogue = Dialogue.objects.create(
            run=run,
            task=task,
            attempt=attempt,
            status=DialogueStatus.FINISHED,
            turns_count=len(acts),
            import_job=self.job,
            external_key=key,
            imported={
                "source": {"format": sft.FORMAT, "file": name, "lines": d.lines, "perspectives": sorted(d.sides)},
            },
        )
        Turn.objects.bulk_create(
            Turn(
                dialogue=dialogue,
                index=i,
                speaker=act.speaker,
                action_type=act.action_type,
                argument=act.argument,
                branch=Branch.IMPORTED,
                imported={"extra": {"line": d.outputs[i]["line"], **d.outputs[i]["extra"]}} if i in d.outputs else {},
            )
            for i, act in enumerate(acts)
        )
        self._counted(task, len(acts))

    def _sft_task(self, t: sft.SftTask) -> Task:
        """The library's task when one has this scenario, these agents in this order and the goals the prompts
        showed; otherwise a task rebuilt from the prompts (partial: what no prompt showed stays unknown)."""
        match = _library_task(t)
        if match is not None:
            self.counts["tasks_reused"] += 1
            return match
        external_id = f"sft-{_sft_task_digest(t)}"
        existing = Task.objects.filter(external_id=external_id).first()
        if existing is not None:
            self.counts["tasks_reused"] += 1
            return existing
        agents = [
            _library_agent(name, t.backgrounds[i] or t.seen[i], own=bool(t.backgrounds[i]))
            or self._agent(_agent_values(name, t.backgrounds[i] or t.seen[i]))
            for i, name in enumerate(t.names)
        ]
        scenario = self._scenario(
            {
                "external_id": external_id,
                "codename": _codename(t.scenario),
                "source": "imported",
                "text": t.scenario,
                "agent1_goal": t.goals[0],
                "agent2_goal": t.goals[1],
                "relationship": "",
                "partial": True,
            }
        )
        task = Task.objects.create(
            external_id=external_id,
            scenario=scenario,
            agent1=agents[0],
            agent2=agents[1],
            source="imported",
            split=self.job.split,
            contexts={str(i): c for i, c in enumerate(t.contexts) if c},
        )
        self._remember("tasks", task.pk)
        self.counts["tasks_created"] += 1
        return task


def _sft_task_digest(t: sft.SftTask) -> str:
    """A rebuilt task is its scenario, its participants in order and the goals the prompts showed."""
    return hashlib.sha256("\x1f".join([t.scenario, *t.names, *t.goals]).encode()).hexdigest()[:16]


def _sft_dialogue_key(t: sft.SftTask, d: sft.SftDialogue) -> str:
    """The same conversation of the same task (scenario, participants, shown goals) gives the same key, whichever
    file brings it; another scenario or goal with the same words is another dialogue."""
    return f"{sft.FORMAT}:{hashlib.sha256(f'{_sft_task_digest(t)}:{d.key}'.encode()).hexdigest()[:32]}"


def _library_task(t: sft.SftTask) -> Task | None:
    for task in (
        Task.objects.filter(scenario__partial=False)
        .select_related("scenario", "agent1", "agent2")
        .filter(agent1__first_name=t.names[0].split(" ")[0], agent2__first_name=t.names[1].split(" ")[0])
    ):
        if (task.agent1.full_name, task.agent2.full_name) != t.names:
            continue
        if (
            render_for(task.scenario.text, "agent_0") != t.scenario
            and render_for(task.scenario.text, "agent_1") != t.scenario
        ):
            continue
        goals = task.scenario.goals
        if all(not t.goals[i] or render_for(goals[i], f"agent_{i}") == t.goals[i] for i in (0, 1)):
            return task
    return None


def _library_agent(name: str, background: str, *, own: bool) -> AgentProfile | None:
    """A complete profile in the library whose background reads exactly as a prompt showed it: in full (the agent's
    own prompt), or as another agent may see it (without the secret, or only identity and public info). The
    other's view must still match one agent only: a name alone matches nobody."""
    if not background or background == name:
        return None
    first = name.split(" ")[0]
    found = []
    for agent in AgentProfile.objects.filter(partial=False, first_name=first):
        if agent.full_name != name:
            continue
        profile = profile_of(agent)
        views = {full_background(profile)}
        if not own:
            views |= {background_seen_by_other(profile, r) for r in RelationshipType} - {""}
        if background in views:
            found.append(agent)
    return found[0] if len(found) == 1 else None


_IDENTITY = re.compile(
    r"^(?P<name>.+?) is a (?P<age>\d{1,3})-year-old (?P<gender>\w+) (?P<occupation>[^.]*)\.\s+"
    r"(?P<pronoun>\S+) pronouns\.\s*(?P<rest>.*)$",
    re.DOTALL,
)
_GENDERS = {"male": "Man", "female": "Woman", "nonbinary": "Nonbinary"}


def _agent_values(name: str, background: str) -> dict[str, Any]:
    """A partial agent profile from the background a prompt showed (SOTOPIA's wording): name, age, gender,
    occupation, pronouns, public info, personality and secret where the text has them; empty where not."""
    first, _, last = name.partition(" ")
    values: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "age": None,
        "source": "imported",
        "partial": True,
    }
    match = _IDENTITY.match(background.strip())
    rest = background.strip()
    if match and match.group("name") == name:
        values.update(
            age=int(match.group("age")),
            gender=_GENDERS.get(match.group("gender").lower(), match.group("gender")),
            occupation=match.group("occupation").strip(),
            gender_pronoun=match.group("pronoun"),
        )
        rest = match.group("rest")
    elif rest == name:
        rest = ""
    rest, _, secret = rest.partition(f"{first}'s secrets:")
    public, _, personality = rest.partition("Personality and values description:")
    values.update(public_info=public.strip(), personality_and_values=personality.strip(), secret=secret.strip())
    digest = hashlib.sha256(f"{name}\x1f{background}".encode()).hexdigest()[:16]
    values["external_id"] = f"sft-{digest}"
    return values


def _codename(scenario: str) -> str:
    words = re.findall(r"[A-Za-z0-9']+", scenario)[:8]
    return ("imported: " + " ".join(words))[:200] or "imported"
