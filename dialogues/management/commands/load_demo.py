"""python manage.py load_demo — the project's own demo tasks (idempotent)."""

from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

import dialogues

DEMO_DIR = Path(dialogues.__file__).resolve().parent / "demo"


class Command(BaseCommand):
    help = "Load the demo tasks written for omega-web (safe to run again: nothing changes the second time)."

    def handle(self, *args, **options):
        self.stdout.write("Demo tasks:")
        call_command(
            "import_sotopia",
            DEMO_DIR,
            split="train",
            source="omega-demo",
            stdout=self.stdout,
            verbosity=options["verbosity"],
        )
