"""python manage.py import_sotopia DIR [--split train|eval] [--source NAME]"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dialogues.library import services
from dialogues.library.models import ImportStatus, Split
from dialogues.library.sotopia import FILE_KINDS, ImportRejected, Problem, discover


class Command(BaseCommand):
    help = (
        "Import a folder of SOTOPIA profile files (agents, environments, relationships, env-agent combos and the "
        "hard subset). Atomic and idempotent: a bad file imports nothing; importing twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--split",
            choices=Split.values,
            default=Split.EVAL,
            help="train or eval (default eval: SOTOPIA's tasks are evaluation tasks)",
        )
        parser.add_argument("--source", default="sotopia", help="collection name shown in the library")

    def handle(self, *args, directory: Path, split: str, source: str, **options):
        try:
            found = discover(directory)
        except ImportRejected as rejected:
            raise CommandError(str(rejected)) from rejected
        if options["verbosity"] >= 2:
            for kind, path in found.items():
                self.stdout.write(f"  {FILE_KINDS[kind][1]:<45} {path.name}")
        files = {kind: (path.name, path.read_bytes()) for kind, path in found.items()}
        job = services.import_job_create(
            created_by=None, origin="cli", split=split, source=source, files=files, enqueue=False
        )
        job = services.import_job_run(job_id=job.pk)
        if job.status != ImportStatus.SUCCEEDED:
            lines = "\n".join(f"  {Problem(**p)}" for p in job.problems)
            raise CommandError(f"Nothing was imported (import #{job.pk}); {len(job.problems)} problem(s):\n{lines}")
        if options["verbosity"] == 0:
            return
        for kind, counts in job.change_rows:
            self.stdout.write(
                f"  {kind:<14} {counts['created']:>5} created {counts['updated']:>5} updated "
                f"{counts['unchanged']:>5} unchanged"
            )
        lib = job.counts["library"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Import #{job.pk} done. Library: {lib['agents']} agents, {lib['scenarios']} scenarios, "
                f"{lib['relationships']} relationships, {lib['tasks']} tasks, {lib['hard']} hard."
            )
        )
