"""python manage.py restore FILE --yes — replace the database with a backup made by `backup` (app stopped)."""

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
        "Replace this database with a backup made by `manage.py backup`. Stop the app (web and workers) first. "
        "SQLite: the file is checked and copied into place. PostgreSQL: pg_restore into this database, its tables "
        "replaced."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--yes", action="store_true", help="yes, replace everything in this database")

    def handle(self, *args, file: Path, yes: bool, **options):
        if not file.is_file():
            raise CommandError(f"no backup at {file}")
        if not yes:
            raise CommandError("this replaces everything in the database: stop the app, then run again with --yes")
        if connection.vendor == "sqlite":
            try:
                with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as backup:
                    if backup.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                        raise CommandError(f"{file} is damaged (SQLite integrity check failed)")
                    backup.execute("SELECT count(*) FROM django_migrations").fetchone()
            except sqlite3.DatabaseError as exc:
                raise CommandError(f"{file} is not an omega-web SQLite backup: {exc}") from exc
            connection.close()
            target = Path(settings.DATABASES["default"]["NAME"])
            for leftover in (Path(f"{target}-wal"), Path(f"{target}-shm")):
                leftover.unlink(missing_ok=True)
            shutil.copyfile(file, target)
        elif connection.vendor == "postgresql":
            pg_restore = shutil.which("pg_restore")
            if pg_restore is None:
                raise CommandError("pg_restore is not installed (Debian: postgresql-client)")
            connection.close()
            command = [pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction"]
            result = subprocess.run(
                [*command, f"--dbname={settings.DATABASE_URL}", str(file)], capture_output=True, text=True
            )
            if result.returncode:
                raise CommandError(f"pg_restore failed (nothing changed): {result.stderr.strip()[:2000]}")
        else:
            raise CommandError(f"no restore for the {connection.vendor} database")
        self.stdout.write(f"Restored the {connection.vendor} database from {file}.")
