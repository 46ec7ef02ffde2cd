"""Importing dialogue corpora made elsewhere (omega-web full-fidelity exports, SOTOPIA SFT files): the job's
life, from the file on disk to the import landed whole or not at all.

An import is an ImportJob of kind `corpus`, claimed and recorded by the library's import_job_run, which runs it
through the runner this module registers. It reads one file on disk in two passes:

1. **Check** (checks.py): every record is read and checked (file, line, field); nothing is written. With problems
   and without "skip bad records" the job fails here and nothing is imported. With it, every bad record is listed
   as skipped.
2. **Write** (writers.py): the good records are written in chunks, each its own transaction. Everything the import
   creates is recorded on the job; if writing fails part-way (a lost database, a bug), those rows are removed again
   and the job says why.

Full-fidelity records are read as a stream both times (memory holds one record). SFT records are put together
into dialogues in a scratch file first, keeping each distinct turn once, so memory and disk follow the corpus's
distinct content rather than the file's size (SFT files repeat every history in every later record).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from dialogues.common.deadlines import deadline_check
from dialogues.corpus_import.checks import FORMATS, MAX_PROBLEMS, check
from dialogues.corpus_import.writers import FullWriter, SftWriter
from dialogues.library.models import AgentProfile, ImportJob, ImportKind, Scenario, Split, Task
from dialogues.library.services import (
    ImportRunner,
    import_job_enqueue,
    import_job_progress_save,
    import_runner_register,
)
from dialogues.library.sotopia import ImportRejected, Problem
from dialogues.runs.models import Dialogue, Run, RunStatus

PROGRESS_EVERY = 0.5  # seconds between progress saves


def import_dir() -> Path:
    path = Path(settings.OMEGA_IMPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _upload_path(name: str) -> Path:
    """Where an uploaded corpus file is kept until its import has run."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    return import_dir() / f"{stamp}-{get_valid_filename(Path(name).name) or 'corpus'}"


def corpus_import_upload(
    *, created_by: Any, upload: UploadedFile, format: str, skip_bad: bool, split: str
) -> ImportJob:
    """Keep an uploaded corpus file in the import directory (written in chunks, never whole in memory) and record
    its import; a worker runs it after commit and removes the file when done."""
    path = _upload_path(upload.name)
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return corpus_import_create(
        created_by=created_by,
        origin="upload",
        path=path,
        name=upload.name,
        format=format,
        skip_bad=skip_bad,
        split=split,
        enqueue=True,
    )


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
            import_job_enqueue(job=job)
    return job


class _Progress:
    """Saves the job's progress now and then and pushes it to its page."""

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.last = 0.0

    def __call__(self, phase: str, done: int, total: int, *, force: bool = False, **more: int) -> None:
        if phase != "done":  # past OMEGA_IMPORT_DEADLINE_SECONDS: the import stops here (and is undone), failed
            deadline_check()
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        import_job_progress_save(job=self.job, progress={"phase": phase, "done": done, "total": total, **more})


def corpus_import_run(job: ImportJob) -> None:
    """Both passes of a claimed corpus import (the library's import_job_run claims it and records the outcome).
    Raises CorpusRejected when nothing may be imported."""
    progress = _Progress(job)
    if job.created:  # a worker died while writing it before: start over from nothing
        corpus_import_undo(job)
    name = job.files[0]["name"] if job.files else Path(job.path).name
    path = Path(job.path)
    if not path.is_file():
        raise CorpusRejected([Problem(name, None, "(file)", "the file is gone (was it moved or deleted?)")])
    job.files = [{**job.files[0], "sha256": _sha256(path)}] if job.files else []
    plan = check(job, path, name, progress, scratch=import_dir())
    if plan.problems and not job.skip_bad:
        if plan.collector is not None:
            plan.collector.close()
        raise CorpusRejected(plan.problems, plan.bad_count, plan.records)
    job.skipped = [p.as_dict() for p in plan.problems]
    job.format = plan.format
    try:
        writer = FullWriter(job, plan) if plan.format == "full" else SftWriter(job, plan)
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


def corpus_import_register() -> None:
    """Tell the library how corpus import jobs run (dialogues' AppConfig.ready calls this in every process)."""
    import_runner_register(
        kind=ImportKind.CORPUS, runner=ImportRunner(run=corpus_import_run, finished=corpus_import_forget_upload)
    )


class CorpusRejected(ImportRejected):
    """Nothing was imported: the first MAX_PROBLEMS bad records (and how many more), with the records counted."""

    def __init__(self, problems: list[Problem], bad_count: int | None = None, records: int = 0) -> None:
        self.bad_count = bad_count if bad_count is not None else len(problems)
        shown = problems[:MAX_PROBLEMS]
        more = self.bad_count - len(shown)
        if more > 0:
            shown.append(Problem("(file)", None, "(more)", f"{more} more bad records not listed"))
        super().__init__(
            shown,
            counts={"records": records, "skipped": self.bad_count, "good": max(records - self.bad_count, 0)},
            message=f"Nothing was imported; {self.bad_count} bad record(s)",
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
