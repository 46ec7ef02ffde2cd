"""Writes for the task library: loading a checked SOTOPIA profile set, and running import jobs.

An import job (from the upload form or the command line) is claimed, run and its outcome recorded here, whatever it
imports. Each kind of job has an ImportRunner: the library's own profile sets, and the dialogue corpora that
`dialogues.corpus_import` registers (from dialogues' AppConfig.ready, so every process has it before a job runs).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from dialogues.common.deadlines import DeadlinePassed, deadline, deadline_check
from dialogues.library import events
from dialogues.library.models import (
    AgentProfile,
    ImportFile,
    ImportJob,
    ImportKind,
    ImportStatus,
    Relationship,
    Scenario,
    Split,
    Task,
)
from dialogues.library.sotopia import ImportRejected, KnownIds, Problem, ProfileSet, Record, read_profile_set

logger = logging.getLogger(__name__)

Counts = dict[str, dict[str, int]]


def _upsert(
    model: type[models.Model], records: list[Record], values_of: Callable[[Record], dict[str, Any]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Create or update rows by external id; returns (external id -> pk, counts)."""
    ids = [r.external_id for r in records]
    existing = {obj.external_id: obj for obj in model.objects.filter(external_id__in=ids)}
    now = timezone.now()
    to_create, to_update, fields = [], [], set()
    for record in records:
        values = values_of(record)
        obj = existing.get(record.external_id)
        if obj is None:
            to_create.append(model(external_id=record.external_id, **values))
            continue
        changed = [name for name, value in values.items() if getattr(obj, name) != value]
        if changed:
            for name in changed:
                setattr(obj, name, values[name])
            obj.updated_at = now
            fields.update(changed)
            to_update.append(obj)
    model.objects.bulk_create(to_create, batch_size=500)
    if to_update:
        model.objects.bulk_update(to_update, [*sorted(fields), "updated_at"], batch_size=500)
    pks = dict(model.objects.filter(external_id__in=ids).values_list("external_id", "id"))
    counts = {
        "created": len(to_create),
        "updated": len(to_update),
        "unchanged": len(records) - len(to_create) - len(to_update),
    }
    return pks, counts


def _known_ids(model: type[models.Model]) -> Callable[[Iterable[str]], set[str]]:
    return lambda ids: set(model.objects.filter(external_id__in=list(ids)).values_list("external_id", flat=True))


def _pk_lookup(model: type[models.Model], in_files: dict[str, int]) -> Callable[[str], int]:
    cache = dict(in_files)

    def lookup(external_id: str) -> int:
        if external_id not in cache:
            cache[external_id] = model.objects.values_list("id", flat=True).get(external_id=external_id)
        return cache[external_id]

    return lookup


@transaction.atomic
def _load_profile_set(profile: ProfileSet, *, split: str, source: str) -> Counts:
    counts: Counts = {}
    agent_pks, counts["agents"] = _upsert(AgentProfile, profile.agents, lambda r: {**r.values, "source": source})
    scenario_pks, counts["scenarios"] = _upsert(Scenario, profile.scenarios, lambda r: r.values)
    agent_pk = _pk_lookup(AgentProfile, agent_pks)
    scenario_pk = _pk_lookup(Scenario, scenario_pks)
    _, counts["relationships"] = _upsert(
        Relationship,
        profile.relationships,
        lambda r: {
            **r.values,
            "agent1_id": agent_pk(r.refs["agent1_id"]),
            "agent2_id": agent_pk(r.refs["agent2_id"]),
        },
    )

    def is_hard(record: Record) -> bool | None:
        if profile.hard_task_ids is not None:
            return record.external_id in profile.hard_task_ids
        if profile.hard_scenario_ids is not None:
            return record.refs["env_id"] in profile.hard_scenario_ids
        return None  # no hard-subset file: keep what the library says

    existing_hard = dict(
        Task.objects.filter(external_id__in=[r.external_id for r in profile.tasks]).values_list("external_id", "hard")
    )

    def task_values(record: Record) -> dict[str, Any]:
        hard = is_hard(record)
        return {
            "scenario_id": scenario_pk(record.refs["env_id"]),
            "agent1_id": agent_pk(record.refs["agent_ids"][0]),
            "agent2_id": agent_pk(record.refs["agent_ids"][1]),
            "source": source,
            "split": split,
            "hard": existing_hard.get(record.external_id, False) if hard is None else hard,
        }

    _, counts["tasks"] = _upsert(Task, profile.tasks, task_values)
    # A hard-subset file may name tasks already in the library that this import does not carry.
    in_files = {r.external_id for r in profile.tasks}
    outside = Task.objects.exclude(external_id__in=in_files).filter(hard=False)
    marked = 0
    if profile.hard_task_ids:
        marked += outside.filter(external_id__in=profile.hard_task_ids - in_files).update(hard=True)
    elif profile.hard_scenario_ids:
        marked += outside.filter(scenario__external_id__in=profile.hard_scenario_ids).update(hard=True)
    counts["hard"] = {"in_import": sum(1 for r in profile.tasks if is_hard(r)), "marked_elsewhere": marked}
    counts["library"] = {
        "agents": AgentProfile.objects.count(),
        "scenarios": Scenario.objects.count(),
        "relationships": Relationship.objects.count(),
        "tasks": Task.objects.count(),
        "hard": Task.objects.filter(hard=True).count(),
    }
    return counts


def task_library_import(*, files: dict[str, tuple[str, bytes]], split: str, source: str) -> Counts:
    """Check a SOTOPIA profile set and load it in one transaction. Importing the same set twice changes
    nothing. Raises ImportRejected (nothing imported) with every problem's file, line and field."""
    if split not in Split.values:
        raise ValueError(f"split must be one of {Split.values}")
    known = KnownIds(agents=_known_ids(AgentProfile), scenarios=_known_ids(Scenario), tasks=_known_ids(Task))
    profile = read_profile_set(files, known)
    return _load_profile_set(profile, split=split, source=source)


# --- import jobs (the upload form and the CLI both go through these) ------------------------------------


@dataclass(frozen=True)
class ImportRunner:
    """How one kind of import job runs. `run` does the work of a claimed job, recording its counts (and anything
    else it learns) on the job, and raises ImportRejected when nothing may be imported; `finished`, if any, tidies up
    once the outcome is saved, whatever it was."""

    run: Callable[[ImportJob], None]
    finished: Callable[[ImportJob], None] | None = None


def _job_files(job: ImportJob) -> dict[str, tuple[str, bytes]]:
    return {f.kind: (f.name, bytes(f.content)) for f in job.stored_files.all()}


def _profile_set_run(job: ImportJob) -> None:
    job.counts = task_library_import(files=_job_files(job), split=job.split, source=job.source)


_RUNNERS: dict[str, ImportRunner] = {ImportKind.PROFILES: ImportRunner(run=_profile_set_run)}


def import_runner_register(*, kind: str, runner: ImportRunner) -> None:
    """Say how jobs of `kind` run (an area above the library that reads other imports calls this at start-up)."""
    _RUNNERS[kind] = runner


def import_job_create(
    *, created_by: Any, origin: str, split: str, source: str, files: dict[str, tuple[str, bytes]], enqueue: bool
) -> ImportJob:
    """Record an import with its files (kept in the database); with enqueue, a worker runs it after commit."""
    with transaction.atomic():
        job = ImportJob.objects.create(
            created_by=created_by,
            origin=origin,
            split=split,
            source=source,
            files=[
                {"kind": kind, "name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for kind, (name, data) in files.items()
            ],
        )
        ImportFile.objects.bulk_create(
            ImportFile(job=job, kind=kind, name=name, content=data) for kind, (name, data) in files.items()
        )
        if enqueue:
            import_job_enqueue(job=job)
    return job


def import_job_enqueue(*, job: ImportJob) -> None:
    """A worker runs the job once the current transaction commits."""
    from dialogues.library.tasks import import_job_run_task  # the tasks module imports this one

    transaction.on_commit(lambda: import_job_run_task.delay(job.pk))


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a pending import. Safe to call twice: a job that already started (or is gone) is left alone. A job
    still running after OMEGA_IMPORT_DEADLINE_SECONDS stops at its next progress report and is marked failed with
    the reason (a runner reports progress through `import_job_progress_save`, which checks the deadline)."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING, started_at=timezone.now()
    )
    job = ImportJob.objects.filter(pk=job_id).first()
    if not claimed or job is None:
        return job
    events.import_job_changed(job)
    runner = _RUNNERS.get(job.kind)
    try:
        if runner is None:
            raise LookupError(f"no importer is registered for imports of kind {job.kind!r}")
        with deadline(settings.OMEGA_IMPORT_DEADLINE_SECONDS):
            runner.run(job)
        job.status = ImportStatus.SUCCEEDED
    except DeadlinePassed as late:
        job.problems = [Problem("(import)", None, "(deadline)", str(late)).as_dict()]
        job.status = ImportStatus.FAILED
    except ImportRejected as rejected:
        job.problems = [p.as_dict() for p in rejected.problems]
        job.counts = rejected.counts
        job.status = ImportStatus.FAILED
    except Exception as exc:  # a bug or a lost database: the job says so instead of hanging in "running"
        logger.exception("import job %s crashed", job_id)
        job.problems = [Problem("(import)", None, "(internal)", f"{type(exc).__name__}: {exc}").as_dict()]
        job.status = ImportStatus.FAILED
    job.finished_at = timezone.now()
    job.save(update_fields=["counts", "problems", "status", "finished_at", "skipped", "format", "files"])
    if runner is not None and runner.finished is not None:
        runner.finished(job)
    events.import_job_changed(job)
    return job


def import_job_progress_save(*, job: ImportJob, progress: dict[str, Any]) -> None:
    """Record how far a running import has got, and show it on the job's page. Raises DeadlinePassed once the
    job is past OMEGA_IMPORT_DEADLINE_SECONDS (the job then stops and is marked failed with the reason)."""
    deadline_check()
    job.progress = progress
    ImportJob.objects.filter(pk=job.pk).update(progress=progress)
    events.import_job_changed(job)


def import_job_requeue_interrupted() -> int:
    """Embedded mode keeps its queue in memory, so a restart loses queued work. At start-up, imports that
    were waiting or cut off (their transaction rolled back) are queued again. Returns how many."""
    from dialogues.library.tasks import import_job_run_task  # the tasks module imports this one

    interrupted = list(
        ImportJob.objects.filter(status__in=[ImportStatus.PENDING, ImportStatus.RUNNING]).values_list("pk", flat=True)
    )
    ImportJob.objects.filter(pk__in=interrupted).update(status=ImportStatus.PENDING, started_at=None)
    for pk in interrupted:
        import_job_run_task.delay(pk)
    return len(interrupted)
