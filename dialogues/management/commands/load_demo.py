"""python manage.py load_demo — the project's own demo tasks (idempotent)."""

import hashlib
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

import dialogues
from dialogues.library.models import ImportJob, ImportStatus
from dialogues.library.sotopia import discover

DEMO_DIR = Path(dialogues.__file__).resolve().parent / "demo"
DEMO_SOURCE = "omega-demo"


class Command(BaseCommand):
    help = "Load the demo tasks written for omega-web (safe to run again: nothing changes the second time)."

    def handle(self, *args, **options):
        files = discover(DEMO_DIR)
        digests = sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in files.values())
        last = ImportJob.objects.filter(source=DEMO_SOURCE, status=ImportStatus.SUCCEEDED).first()
        if last is not None and sorted(f.get("sha256", "") for f in last.files) == digests:
            if options["verbosity"]:
                self.stdout.write(f"Demo tasks: already loaded (import #{last.pk}, files unchanged).")
            return
        if options["verbosity"]:
            self.stdout.write("Demo tasks:")
        call_command(
            "import_sotopia",
            DEMO_DIR,
            split="train",
            source=DEMO_SOURCE,
            stdout=self.stdout,
            verbosity=options["verbosity"],
        )
