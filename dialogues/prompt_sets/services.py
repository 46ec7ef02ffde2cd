"""Prompt sets: finding the set a run, fork or job uses, saving a new one (checked as a whole: nothing is saved when
any template is invalid), exporting a set to plain text files with a manifest and importing it back byte for byte,
and the side-by-side difference of two sets.

A set is found by name; a run records name and version (the content hash). The built-in set is the repository's
files: a run that recorded it renders with the installation's built-in set (as before sets existed), and its
pages say when that set has changed since."""

from __future__ import annotations

import difflib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from dialogues.engine import prompts
from dialogues.engine.prompts import BUILTIN_NAME, SPECS, InvalidPromptSet, PromptSet, TemplateError
from dialogues.prompt_sets.models import PromptSet as PromptSetRow

MANIFEST = "manifest.json"
NAME_LIMIT = 100
ZIP_LIMIT = 20_000_000  # bytes of an uploaded or imported zip, unpacked


class PromptSetMissing(LookupError):
    pass


def _from_row(row: PromptSetRow) -> PromptSet:
    return PromptSet(row.name, dict(row.templates), prompts.Syntax(row.syntax), prompts.AnswerShapes(row.answers))


_found: dict[tuple[str, str], PromptSet] = {}  # saved sets never change: one read per set and process


def prompt_set_get(name: str = BUILTIN_NAME) -> PromptSet:
    """The set called `name` (the built-in one by default). Raises PromptSetMissing naming the sets there are."""
    if not name or name == BUILTIN_NAME:
        return prompts.builtin()
    row = PromptSetRow.objects.filter(name=name).first()
    if row is None:
        known = ", ".join([BUILTIN_NAME, *PromptSetRow.objects.values_list("name", flat=True)])
        raise PromptSetMissing(f"no prompt set called {name!r} (there are: {known})")
    return _found.setdefault((row.name, row.version), _from_row(row))


def prompt_set_recorded(name: str, version: str) -> PromptSet:
    """The set a run, fork or job recorded: the built-in set for the built-in name (the installation's files), else
    the saved set of that version."""
    if not name or name == BUILTIN_NAME:
        return prompts.builtin()
    found = _found.get((name, version))
    if found is None:
        row = PromptSetRow.objects.filter(name=name, version=version).first()
        if row is None:
            raise PromptSetMissing(f"the prompt set {name} ({version}) is not in this database")
        found = _found.setdefault((name, version), _from_row(row))
    return found


def prompt_sets() -> list[PromptSet]:
    """Every set: the built-in one first, then the saved ones by name."""
    return [prompts.builtin(), *(_from_row(r) for r in PromptSetRow.objects.all())]


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValueError("a prompt set needs a name")
    if len(name) > NAME_LIMIT:
        raise ValueError(f"the name is {len(name)} characters long; at most {NAME_LIMIT}")
    if "/" in name or not name.isprintable():
        raise ValueError("a name cannot hold a / or control characters")
    if name == BUILTIN_NAME:
        raise ValueError(f"{BUILTIN_NAME!r} is the repository's own set: choose another name")
    if PromptSetRow.objects.filter(name=name).exists():
        raise ValueError(f"there is already a prompt set called {name!r}")
    return name


def prompt_set_save(
    *,
    name: str,
    templates: dict[str, str],
    syntax: str,
    answers: str = prompts.AnswerShapes.OMEGA,
    based_on: PromptSet | None = None,
    note: str = "",
    user: Any = None,
) -> PromptSet:
    """Save a new set. Raises InvalidPromptSet with every problem (template and line), or ValueError for the name,
    the syntax, or a set identical to one there is; nothing is saved then."""
    try:
        syntax_value = prompts.Syntax(syntax)
        answers_value = prompts.AnswerShapes(answers)
    except ValueError as exc:
        raise ValueError(f"unknown template syntax or answer shapes: {exc}") from exc
    name = check_name(name)
    problems = prompts.check_templates(templates, syntax_value)
    if problems:
        raise InvalidPromptSet(problems)
    made = PromptSet(name, dict(templates), syntax_value, answers_value)
    same = next((s for s in prompt_sets() if s.version == made.version), None)
    if same is not None:
        raise ValueError(f"nothing changed: these templates are the prompt set {same.name} ({same.version})")
    try:
        with transaction.atomic():
            PromptSetRow.objects.create(
                name=name,
                version=made.version,
                syntax=syntax_value,
                answers=answers_value,
                templates=made.templates,
                based_on_name=based_on.name if based_on else "",
                based_on_version=based_on.version if based_on else "",
                note=note,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError as exc:  # another request saved the same name or content a moment before
        raise ValueError(f"a prompt set with this name or these templates was saved meanwhile: {exc}") from exc
    return made


# --- export and import -----------------------------------------------------------------------------------------


def manifest_of(prompt_set: PromptSet) -> dict[str, Any]:
    return {
        "name": prompt_set.name,
        "version": prompt_set.version,
        "syntax": prompt_set.syntax.value,
        "answers": prompt_set.answers.value,
        "templates": {name: f"{name}.txt" for name in sorted(prompt_set.templates)},
    }


def export_files(prompt_set: PromptSet) -> dict[str, bytes]:
    """A set as files: one <template>.txt per template (its exact text, UTF-8) and manifest.json."""
    files = {f"{name}.txt": text.encode("utf-8") for name, text in sorted(prompt_set.templates.items())}
    files[MANIFEST] = (json.dumps(manifest_of(prompt_set), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files


def export_zip(prompt_set: PromptSet) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in export_files(prompt_set).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def export_to(prompt_set: PromptSet, dest: Path) -> Path:
    """Write a set to a folder, or to a zip when `dest` ends in .zip. Refuses a non-empty folder."""
    if dest.suffix == ".zip":
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(export_zip(prompt_set))
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty: export into a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in export_files(prompt_set).items():
        (dest / name).write_bytes(data)
    return dest


def read_export(source: Path | bytes, label: str = "") -> dict[str, bytes]:
    """The files of an exported set, from a folder, a zip file or a zip's bytes. Raises ValueError naming the
    source."""
    where = label or str(source)
    if isinstance(source, Path) and source.is_dir():
        return {p.name: p.read_bytes() for p in sorted(source.iterdir()) if p.is_file()}
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > ZIP_LIMIT:
                raise ValueError(f"{where}: more than {ZIP_LIMIT:,} bytes unpacked")
            return {Path(i.filename).name: archive.read(i) for i in infos}
    except (OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{where}: not a folder or zip of an exported prompt set ({exc})") from exc


def parse_export(files: dict[str, bytes], label: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest and the templates of an exported set, checked against each other. Raises ValueError naming the
    file."""
    if MANIFEST not in files:
        raise ValueError(f"{label}: no {MANIFEST}")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{label}/{MANIFEST}: not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("templates"), dict):
        raise ValueError(f"{label}/{MANIFEST}: expected an object with a 'templates' object")
    templates = {}
    for name, filename in manifest["templates"].items():
        if not isinstance(filename, str) or filename not in files:
            raise ValueError(f"{label}/{MANIFEST}: template {name!r} names a file that is not there ({filename!r})")
        try:
            templates[name] = files[filename].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{label}/{filename}: not UTF-8 text ({exc})") from exc
    return manifest, templates


def prompt_set_import(source: Path | bytes, *, name: str = "", user: Any = None, label: str = "") -> PromptSet:
    """Import an exported set under its own name (or `name`). The manifest's version must match the templates (a
    set edited by hand after export gets a new version: pass it through the editor instead, or drop the version
    from the manifest). Raises ValueError or InvalidPromptSet; nothing is saved then."""
    where = label or str(source)
    manifest, templates = parse_export(read_export(source, where), where)
    syntax, answers = manifest.get("syntax", "template"), manifest.get("answers", prompts.AnswerShapes.OMEGA)
    version = manifest.get("version")
    if version:
        actual = prompts.set_version(templates, syntax, answers)
        if actual != version:
            raise ValueError(
                f"{where}/{MANIFEST}: version {version}, but the files hash to {actual}: they were changed after the "
                "export (remove the version from the manifest to import them as a new set)"
            )
    return prompt_set_save(
        name=name or manifest.get("name", ""), templates=templates, syntax=syntax, answers=answers, note="imported",
        user=user,
    )  # fmt: skip


# --- showing ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    text: str
    placeholder: bool = False
    known: bool = True


def segments(prompt_set: PromptSet, template: str) -> list[Segment]:
    """A template's text cut into plain text and placeholders, for highlighting (an unparsable template is one
    plain segment)."""
    text = prompt_set.templates[template]
    allowed = SPECS[template].placeholders if template in SPECS else {}
    out, position = [], 0
    try:
        for field in prompts.scan(text, prompt_set.syntax, template):
            out.append(Segment(text[position : field.start]))
            out.append(Segment(text[field.start : field.end], True, field.name in allowed))
            position = field.end
    except TemplateError:
        return [Segment(text)]
    out.append(Segment(text[position:]))
    return [s for s in out if s.text]


@dataclass(frozen=True)
class DiffRow:
    kind: str  # equal, replace, delete, insert
    left_number: int | None
    left: str
    right_number: int | None
    right: str


@dataclass(frozen=True)
class TemplateDiff:
    template: str
    changed: bool
    rows: list[DiffRow]
    added: int
    removed: int


def diff_sets(a: PromptSet, b: PromptSet) -> list[TemplateDiff]:
    """Template by template, the lines of `a` beside the lines of `b` (difflib's opcodes)."""
    result = []
    order = list(SPECS)
    for template in sorted(
        set(a.templates) | set(b.templates), key=lambda t: (t not in SPECS, order.index(t) if t in SPECS else 0, t)
    ):
        left = a.templates.get(template, "").splitlines()
        right = b.templates.get(template, "").splitlines()
        rows: list[DiffRow] = []
        added = removed = 0
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
            for k in range(max(i2 - i1, j2 - j1)):
                li, rj = i1 + k, j1 + k
                has_left, has_right = li < i2, rj < j2
                removed += tag != "equal" and has_left
                added += tag != "equal" and has_right
                rows.append(
                    DiffRow(
                        tag if has_left and has_right else ("delete" if has_left else "insert"),
                        li + 1 if has_left else None,
                        left[li] if has_left else "",
                        rj + 1 if has_right else None,
                        right[rj] if has_right else "",
                    )
                )
        changed = a.templates.get(template) != b.templates.get(template)
        result.append(TemplateDiff(template, changed, rows, added, removed))
    return result


def diff_text(a: PromptSet, b: PromptSet) -> str:
    """A unified diff of two sets, template by template (for the command line)."""
    out = []
    for template in sorted(set(a.templates) | set(b.templates)):
        out.extend(
            difflib.unified_diff(
                a.templates.get(template, "").splitlines(keepends=True),
                b.templates.get(template, "").splitlines(keepends=True),
                fromfile=f"{a.name}/{template}.txt",
                tofile=f"{b.name}/{template}.txt",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)
