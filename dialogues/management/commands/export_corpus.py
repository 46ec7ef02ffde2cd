"""python manage.py export_corpus NAME [--formats sotopia-sft,full] [--corrections cut] [--llm-calls] [--out DIR]

Freezes a new version of a corpus (as the browser's Export does) and prints where the zip is, or copies it to
--out. Overrides are recorded in the browser or with --override KIND=REASON.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dialogues.corpora.export import corpus_export, version_path
from dialogues.corpora.formats import ExportOptions, registry
from dialogues.corpora.models import Corpus
from dialogues.corpora.services import override_record


class Command(BaseCommand):
    help = "Export a new frozen version of a corpus as a zip (formats, dataset_info.json, manifest)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The corpus's name (see the Corpora page)")
        parser.add_argument("--formats", help=f"Comma-separated, from: {', '.join(registry())} (default: all)")
        parser.add_argument("--corrections", choices=["apply", "cut"], default="apply")
        parser.add_argument("--llm-calls", action="store_true", help="Full JSONL: include every LLM call")
        parser.add_argument(
            "--override", action="append", metavar="KIND=REASON", help="Record an override first (eval_split|simulated)"
        )
        parser.add_argument("--user", help="Whose name goes into the manifest (an existing account)")
        parser.add_argument("--out", help="Copy the zip into this directory")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        corpus = Corpus.objects.filter(name=name).first()
        if corpus is None:
            known = ", ".join(Corpus.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"no corpus named {name!r} (known: {known})")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no account {options['user']!r}")
        try:
            for item in options["override"] or []:
                kind, sep, reason = item.partition("=")
                if not sep:
                    raise CommandError(f"--override {item!r}: write KIND=REASON")
                override_record(corpus_id=corpus.pk, kind=kind, reason=reason, user=user)
            formats = [f.strip() for f in options["formats"].split(",")] if options["formats"] else None
            version = corpus_export(
                corpus_id=corpus.pk,
                formats=formats,
                options=ExportOptions(corrections=options["corrections"], llm_calls=options["llm_calls"]),
                created_by=user,
            )
        except ValueError as problem:
            raise CommandError(str(problem)) from problem
        path = version_path(version)
        counts = version.manifest["counts"]
        self.stdout.write(
            f"{corpus.name} v{version.number}: {counts['dialogues']} dialogues, {counts['records']} records; "
            f"{version.size:,} bytes, sha256 {version.sha256}"
        )
        for file, lines in counts["files"].items():
            self.stdout.write(f"  {file}: {lines} lines")
        if options["out"]:
            target = Path(options["out"])
            target.mkdir(parents=True, exist_ok=True)
            copied = target / path.name
            if copied.resolve() != path.resolve():  # --out may name the export folder itself
                shutil.copy2(path, copied)
            self.stdout.write(f"Copied to {copied}")
        else:
            self.stdout.write(f"Zip: {path}")
