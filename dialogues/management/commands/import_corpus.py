"""python manage.py import_corpus FILE [--format auto|full|sotopia-sft] [--skip-bad] [--split train|eval] [--celery]"""

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dialogues.corpus_import.services import FORMATS, corpus_import_create
from dialogues.library import services
from dialogues.library.models import ImportJob, ImportStatus, Split
from dialogues.library.sotopia import Problem


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Import a dialogue corpus made elsewhere: an omega-web full-fidelity export (its zip, or the JSONL files) or "
        "SOTOPIA SFT records (alpaca instruction/output, SOTOPIA-π prompt/result or input/output; JSONL or a JSON "
        "array). The file is checked first: a bad record imports nothing, unless --skip-bad, which imports the "
        "good records and lists every skipped one. Importing the same file twice adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=list(FORMATS), default="auto")
        parser.add_argument("--skip-bad", action="store_true", help="import the good records, list the bad ones")
        parser.add_argument(
            "--split",
            choices=Split.values,
            default=Split.TRAIN,
            help="split of tasks rebuilt from SFT prompts (default train); full exports carry their own",
        )
        parser.add_argument("--celery", action="store_true", help="run on a worker and follow its progress here")

    def handle(self, *args, file: Path, format: str, skip_bad: bool, split: str, celery: bool, **options):
        try:
            job = corpus_import_create(
                created_by=None,
                origin="cli",
                path=file,
                format=format,
                skip_bad=skip_bad,
                split=split,
                enqueue=celery,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        job = self._follow(job.pk, options["verbosity"]) if celery else services.import_job_run(job_id=job.pk)
        if job.status != ImportStatus.SUCCEEDED:
            lines = "\n".join(f"  {Problem(**p)}" for p in job.problems)
            raise CommandError(f"Nothing was imported (import #{job.pk}); problems:\n{lines}")
        if options["verbosity"] == 0:
            return
        for p in job.skipped:
            self.stdout.write(f"skipped: {Problem(**p)}")
        c = job.counts
        runs = ", ".join(f"run #{run.pk} ({run.name}, /runs/{run.pk}/)" for run in job.runs.order_by("id"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Import #{job.pk} of {job.files[0]['name']} ({job.format}): {_n(c['dialogues'], 'dialogue')} "
                f"({_n(c['turns'], 'turn')}), {_n(c['tasks_created'], 'task')} rebuilt, "
                f"{c['tasks_reused']} found in the library, {c['already_here']} already here, "
                f"{_n(c['skipped'], 'record')} skipped." + (f" Into {runs}." if runs else "")
            )
        )
        if c.get("eval_split"):
            self.stdout.write(
                self.style.WARNING(f"{_n(c['eval_split'], 'dialogue')} on eval-split tasks (a library task matched).")
            )

    def _follow(self, pk: int, verbosity: int) -> ImportJob:
        while True:
            job = ImportJob.objects.get(pk=pk)
            if job.is_done:
                if verbosity:
                    sys.stderr.write("\n")
                return job
            p = job.progress or {}
            if verbosity and p.get("total"):
                share = 100 * p["done"] / p["total"]
                sys.stderr.write(f"\r{p['phase']:<9} {share:5.1f}%  records {p.get('records', '')}   ")
            time.sleep(0.5)
