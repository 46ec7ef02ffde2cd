"""manage.py prompts list|show|diff|export|import: the prompt sets (ADR 0027) from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dialogues.engine.prompts import SPECS, SYNTAX_HELP, InvalidPromptSet
from dialogues.prompt_sets import services
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs.models import Run


class Command(BaseCommand):
    help = "The prompt sets: list them, show or diff them, export one to files, import one from files."

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True)
        verbs.add_parser("list", help="every set, with its version and the runs that used it")
        show = verbs.add_parser("show", help="a set's templates (or one of them)")
        show.add_argument("name")
        show.add_argument("--template", choices=list(SPECS), help="only this template, exactly as stored")
        diff = verbs.add_parser("diff", help="a unified diff of two sets, template by template")
        diff.add_argument("a")
        diff.add_argument("b")
        export = verbs.add_parser("export", help="a set as <template>.txt files and manifest.json")
        export.add_argument("name")
        export.add_argument("dest", type=Path, help="a new folder, or a file ending in .zip")
        imported = verbs.add_parser("import", help="a set exported before (folder or zip)")
        imported.add_argument("source", type=Path)
        imported.add_argument("--name", default="", help="save it under this name (default: the manifest's)")

    def handle(self, *args: Any, verb: str, **o: Any) -> None:
        try:
            getattr(self, f"_{verb}")(**o)
        except (PromptSetMissing, ValueError) as exc:
            if isinstance(exc, InvalidPromptSet):
                raise CommandError("the set is not valid:\n" + "\n".join(f"  {p}" for p in exc.problems)) from exc
            raise CommandError(str(exc)) from exc

    def _list(self, **_: Any) -> None:
        used: dict[tuple[str, str], int] = {}
        for name, version in Run.objects.values_list("prompt_set_name", "prompt_set_version"):
            used[(name, version)] = used.get((name, version), 0) + 1
        self.stdout.write(f"{'name':30} {'version':12} {'syntax':8} runs")
        for prompt_set in services.prompt_sets():
            runs = used.get((prompt_set.name, prompt_set.version), 0)
            self.stdout.write(f"{prompt_set.name:30} {prompt_set.version:12} {prompt_set.syntax.value:8} {runs}")
        for (name, version), runs in sorted(used.items()):
            if name and not any(s.name == name and s.version == version for s in services.prompt_sets()):
                self.stdout.write(f"{name:30} {version:12} {'':8} {runs}  (an earlier version, no longer here)")

    def _show(self, name: str, template: str | None, **_: Any) -> None:
        prompt_set = prompt_set_get(name)
        if template:
            self.stdout.write(prompt_set.raw(template), ending="")
            return
        self.stdout.write(f"{prompt_set.label}, placeholders {SYNTAX_HELP[prompt_set.syntax]}")
        for key, spec in SPECS.items():
            self.stdout.write(f"\n=== {key}: {spec.purpose}\n")
            self.stdout.write(prompt_set.raw(key))

    def _diff(self, a: str, b: str, **_: Any) -> None:
        text = services.diff_text(prompt_set_get(a), prompt_set_get(b))
        self.stdout.write(text or "The two sets have the same templates.\n", ending="")

    def _export(self, name: str, dest: Path, **_: Any) -> None:
        written = services.export_to(prompt_set_get(name), dest)
        self.stdout.write(f"Wrote {name} to {written}.")

    def _import(self, source: Path, name: str, **_: Any) -> None:
        if not source.exists():
            raise CommandError(f"{source}: no such file or folder")
        made = services.prompt_set_import(source, name=name)
        self.stdout.write(f"Imported the prompt set {made.label}.")
