"""Freezing a corpus version: every chosen format's files written line by line to disk (one chunk of dialogues in
memory at a time), `dataset_info.json` and `manifest.json` beside them, all zipped once into OMEGA_EXPORT_DIR.
Downloads stream that file; however large the corpus, memory stays flat.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from dialogues.common.deadlines import deadline, deadline_check, failure_reason
from dialogues.corpora.data import CHUNK, dialogues
from dialogues.corpora.formats import ExportOptions, registry
from dialogues.corpora.lengths import DEFAULT_CUTOFF, LengthTally, Measure
from dialogues.corpora.models import Corpus, CorpusVersion, VersionStatus
from dialogues.corpora.selection import OVERRIDE_KINDS, CorpusFilters, counts, missing_overrides, selected
from dialogues.runs.models import Dialogue, Run


class OverrideNeeded(ValueError):
    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        what = "; ".join(OVERRIDE_KINDS[k] for k in kinds)
        super().__init__(f"the selection holds {what}: record an override with a reason to export it")


class LineWriter:
    """JSON lines to a file, with the running sha256, line count and size."""

    def __init__(self, path: Path, measure: Measure | None = None) -> None:
        self.path = path
        self.measure = measure
        self.lengths = LengthTally()
        self._file = path.open("wb")
        self._sha = hashlib.sha256()
        self.lines = 0
        self.bytes = 0
        self.seen: set[str] = set()

    def write(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self._file.write(data)
        self._sha.update(data)
        if self.measure is not None:
            self.lengths.add(self.measure(record))
        self.lines += 1
        self.bytes += len(data)

    def close(self) -> dict[str, Any]:
        self._file.close()
        info = {"sha256": self._sha.hexdigest(), "bytes": self.bytes, "lines": self.lines}
        if self.measure is not None:
            info["longest_record"] = self.lengths.longest
            if self.measure.unit == "tokens":
                info[f"records_over_{DEFAULT_CUTOFF}"] = self.lengths.over_default
        return info


def export_dir() -> Path:
    path = Path(settings.OMEGA_EXPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _json_file(path: Path, value: Any) -> dict[str, Any]:
    data = (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    path.write_bytes(data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def corpus_version_request(
    *, corpus_id: int, formats: list[str] | None = None, options: ExportOptions | None = None, created_by: Any = None
) -> CorpusVersion:
    """Freeze what the corpus selects now into a new, pending version (its files are written by
    `corpus_version_build`, on a worker). Raises ValueError (OverrideNeeded) with the reason when there is nothing
    to export, a format is unknown, or an override is missing."""
    chosen = registry()
    names = formats or list(chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        raise ValueError(f"unknown format {', '.join(unknown)} (known: {', '.join(chosen)})")
    options = options or ExportOptions()
    if options.corrections not in ("apply", "cut"):
        raise ValueError("corrections is 'apply' or 'cut'")
    with transaction.atomic():
        corpus = Corpus.objects.select_for_update().get(pk=corpus_id)
        filters = CorpusFilters.from_json(corpus.filters)
        options = ExportOptions(options.corrections, filters.exclude_human_turns, options.llm_calls)
        ids = list(selected(filters, corpus.includes, corpus.excludes).values_list("pk", flat=True))
        if not ids:
            raise ValueError("the corpus selects no dialogue")
        tally = counts(filters, corpus.includes, corpus.excludes)
        missing = missing_overrides(tally.needs(), corpus.overrides)
        if missing:
            raise OverrideNeeded(missing)
        number = (corpus.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        manifest = _manifest(corpus, number, names, options, ids, tally, {}, created_by)
        return CorpusVersion.objects.create(
            corpus=corpus,
            number=number,
            created_by=created_by,
            dialogue_ids=ids,
            formats=names,
            options=asdict(options),
            manifest=manifest,
        )


def corpus_version_build(*, version_id: int) -> CorpusVersion:
    """Write a requested version's files and zip. Safe to run again (a worker that died mid-way): the files are
    rewritten from the frozen selection. A failure marks the version failed with the reason, and so does running past
    OMEGA_EXPORT_DEADLINE_SECONDS (checked after every dialogue and every file zipped)."""
    version = CorpusVersion.objects.select_related("corpus").get(pk=version_id)
    if version.status == VersionStatus.SUCCEEDED:
        return version
    CorpusVersion.objects.filter(pk=version.pk).update(status=VersionStatus.RUNNING, written=0, error="")
    try:
        with deadline(settings.OMEGA_EXPORT_DEADLINE_SECONDS):
            _build(version)
    except Exception as exc:  # the version says why; nothing half-written is offered for download
        CorpusVersion.objects.filter(pk=version.pk).update(
            status=VersionStatus.FAILED, error=failure_reason(exc), finished_at=timezone.now()
        )
        raise
    return CorpusVersion.objects.get(pk=version.pk)


def _build(version: CorpusVersion) -> None:
    chosen = registry()
    names = version.formats
    options = ExportOptions(**version.options)
    stem = f"{slugify(version.corpus.name) or 'corpus'}-v{version.number}"
    work = Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=export_dir()))
    target = export_dir() / f"{stem}.zip"
    try:
        measure = Measure.configured()
        writers = {file: LineWriter(work / file, measure) for name in names for file in chosen[name].files}
        for done, dialogue in enumerate(dialogues(version.dialogue_ids, calls=options.llm_calls), start=1):
            deadline_check()
            for name in names:
                chosen[name].write(dialogue, writers, options)
            if done % CHUNK == 0:
                CorpusVersion.objects.filter(pk=version.pk).update(written=done)
        files = {file: writer.close() for file, writer in writers.items()}
        info: dict[str, Any] = {}
        for name in names:
            info.update(chosen[name].dataset_info())
        registered = {entry.get("file_name") for entry in info.values()}
        for file, facts in files.items():  # what LLaMA-Factory trains on: the cutoff_len statement is about these
            facts["in_dataset_info"] = file in registered
        if info:
            files["dataset_info.json"] = _json_file(work / "dataset_info.json", info)
        manifest = {**version.manifest, "files": files}
        # where things are once unzipped: every file sits in one folder, the one LLaMA-Factory's dataset_dir names
        manifest["layout"] = {"folder": stem, "dataset_info": f"{stem}/dataset_info.json" if info else None}
        manifest["record_lengths"] = {"unit": measure.unit, "tokenizer": measure.tokenizer, "note": measure.problem}
        manifest["counts"] = {
            **manifest["counts"],
            "files": {name: f.get("lines") for name, f in files.items() if "lines" in f},
        }
        _json_file(work / "manifest.json", manifest)
        partial = target.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            for file in ["manifest.json", *files]:
                deadline_check()
                archive.write(work / file, arcname=f"{stem}/{file}")
        partial.replace(target)  # a download never sees a half-written zip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    digest = hashlib.sha256()
    with target.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    CorpusVersion.objects.filter(pk=version.pk).update(
        manifest=manifest,
        path=target.name,
        size=target.stat().st_size,
        sha256=digest.hexdigest(),
        written=len(version.dialogue_ids),
        status=VersionStatus.SUCCEEDED,
        finished_at=timezone.now(),
    )


def corpus_export(
    *, corpus_id: int, formats: list[str] | None = None, options: ExportOptions | None = None, created_by: Any = None
) -> CorpusVersion:
    """Request a version and write it in this process (the command line, tests)."""
    version = corpus_version_request(corpus_id=corpus_id, formats=formats, options=options, created_by=created_by)
    return corpus_version_build(version_id=version.pk)


def _manifest(
    corpus: Corpus,
    number: int,
    names: list[str],
    options: ExportOptions,
    ids: list[int],
    tally: Any,
    files: dict[str, Any],
    created_by: Any,
) -> dict[str, Any]:
    runs = list(
        Run.objects.filter(dialogues__pk__in=ids)
        .distinct()
        .order_by("id")
        .values(
            "id", "name", "variant", "model", "prompt_set_name", "prompt_set_version", "simulated", "backend",
            "server_profiles",
        )
    )  # fmt: skip
    return {
        "corpus": corpus.name,
        "version": number,
        "created_by": created_by.get_username() if created_by else None,
        "created_at": timezone.now().isoformat(),
        "filters": corpus.filters,
        "includes": corpus.includes,
        "excludes": corpus.excludes,
        "overrides": corpus.overrides,
        "options": asdict(options),
        "formats": names,
        "counts": {**asdict(tally), "files": {name: f.get("lines") for name, f in files.items() if "lines" in f}},
        "runs": runs,
        "models": sorted({r["model"] for r in runs}),
        "prompt_set_versions": sorted({r["prompt_set_version"] for r in runs}),
        "prompt_sets": prompt_sets_used(ids, runs),
        "files": files,
    }


def prompt_sets_used(ids: list[int], runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every prompt set the dialogues `ids` were made with: their runs', and a fork arm's own."""
    used = {(r["prompt_set_name"], r["prompt_set_version"]) for r in runs if r["prompt_set_version"]}
    for changes in Dialogue.objects.filter(pk__in=ids, changes__has_key="prompt_set").values_list("changes", flat=True):
        used.add((changes["prompt_set"]["name"], changes["prompt_set"]["version"]))
    return [{"name": name, "version": version} for name, version in sorted(used)]


def version_path(version: CorpusVersion) -> Path:
    """The zip of a version, only ever inside OMEGA_EXPORT_DIR (a stored name cannot point elsewhere)."""
    base = export_dir().resolve()
    path = (base / Path(version.path).name).resolve()
    if path.parent != base:
        raise FileNotFoundError(version.path)
    return path
