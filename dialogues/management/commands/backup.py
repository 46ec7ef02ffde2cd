"""python manage.py backup FILE — a consistent copy of the database while the app runs; restore with `restore`."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = (
        "Back up the database to FILE while the app runs: SQLite (embedded mode) through SQLite's online backup, "
        "PostgreSQL through pg_dump (custom format). Restore with `manage.py restore FILE`."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        file = file.resolve()
        if file.exists():
            raise CommandError(f"{file} exists: choose a new name (a backup never overwrites)")
        file.parent.mkdir(parents=True, exist_ok=True)
        if connection.vendor == "sqlite":
            source = sqlite3.connect(settings.DATABASES["default"]["NAME"])
            target = sqlite3.connect(file)
            try:
                source.backup(target)  # page by page, consistent, while others write
            finally:
                target.close()
                source.close()
        elif connection.vendor == "postgresql":
            pg_dump = shutil.which("pg_dump")
            if pg_dump is None:
                raise CommandError("pg_dump is not installed (Debian: postgresql-client)")
            result = subprocess.run(
                [pg_dump, "--format=custom", "--no-owner", f"--file={file}", f"--dbname={settings.DATABASE_URL}"],
                capture_output=True,
                text=True,
            )
            if result.returncode:
                file.unlink(missing_ok=True)
                raise CommandError(f"pg_dump failed: {result.stderr.strip()}")
        else:
            raise CommandError(f"no backup for the {connection.vendor} database")
        self.stdout.write(f"Backed up the {connection.vendor} database to {file} ({file.stat().st_size:,} bytes).")
