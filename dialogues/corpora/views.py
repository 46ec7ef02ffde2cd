"""The corpus builder in the browser: a named corpus defined by filters, manual includes and excludes, with live
counts; the overrides eval-split and simulated dialogues need; exporting a frozen version; streamed downloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from dialogues.annotation.models import Label
from dialogues.annotation.services import Conflict
from dialogues.common.pages import page_context
from dialogues.corpora.export import version_path
from dialogues.corpora.formats import ExportOptions, registry
from dialogues.corpora.models import Corpus, CorpusVersion, VersionStatus
from dialogues.corpora.selection import OVERRIDE_KINDS, CorpusFilters, counts, funnel, missing_overrides
from dialogues.corpora.services import corpus_save, corpus_version_export, override_record, override_withdraw
from dialogues.engine.config import Variant
from dialogues.library.models import Split
from dialogues.runs.models import Run, RunKind
from omega_web.roles import Capability, requires

_IDS = re.compile(r"[\s,;]+")


def _id_list(text: str) -> list[int]:
    ids = []
    for part in _IDS.split(text.strip()):
        if not part:
            continue
        part = part.lstrip("#")
        if not part.isdigit():
            raise forms.ValidationError(f"{part!r} is not a dialogue number")
        ids.append(int(part))
    return ids


class RunChoiceField(forms.ModelMultipleChoiceField):
    """Runs as ticks that say what each run is: number, name, kind, model and finished dialogues."""

    def label_from_instance(self, run: Run) -> str:
        kind = "" if run.kind == RunKind.GENERATION else f" · {run.kind}"
        sim = " · simulated" if run.simulated else ""
        return f"#{run.pk} {run.name} · {run.variant or run.model}{kind}{sim}"


class CorpusForm(forms.Form):
    version = forms.IntegerField(min_value=0, initial=0, widget=forms.HiddenInput)
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    runs = RunChoiceField(
        queryset=Run.objects.filter(kind__in=[RunKind.GENERATION, RunKind.IMPORTED]).order_by("-id"),
        required=False,
        help_text="None ticked: every run. Imported runs (SFT files) have no kept or filter marks: untick those.",
        widget=forms.CheckboxSelectMultiple,
    )
    variants = forms.MultipleChoiceField(
        choices=[(v.value, v.value) for v in Variant], required=False, widget=forms.CheckboxSelectMultiple
    )
    tasks = forms.CharField(required=False, help_text="Task ids or scenario codenames, separated by commas.")
    split = forms.ChoiceField(
        choices=[(Split.TRAIN.value, "train"), (Split.EVAL.value, "eval"), ("", "both")],
        initial=Split.TRAIN.value,
        required=False,
    )
    kept_only = forms.BooleanField(required=False, initial=True, label="Kept attempts only")
    passed_only = forms.BooleanField(required=False, initial=True, label="Passed the filter only")
    goal_min = forms.FloatField(required=False, min_value=0, max_value=10, label="final goal_c ≥")
    goal_max = forms.FloatField(required=False, min_value=0, max_value=10, label="final goal_c ≤")
    accepted_only = forms.BooleanField(required=False, label="Accepted only")
    exclude_labels = forms.ModelMultipleChoiceField(
        queryset=Label.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    exclude_simulated = forms.BooleanField(required=False, initial=True, label="Exclude simulated dialogues")
    exclude_human_turns = forms.BooleanField(required=False, initial=True, label="No records for turns a person typed")
    includes = forms.CharField(required=False, label="Add by hand", help_text="Dialogue numbers, e.g. 12, 15")
    excludes = forms.CharField(required=False, label="Remove by hand", help_text="Dialogue numbers")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("goal_min"), data.get("goal_max")
        if low is not None and high is not None and low > high:
            self.add_error("goal_max", f"{high:g} is below the lower bound {low:g}: no dialogue can match")
        return data

    def clean_includes(self) -> list[int]:
        return _id_list(self.cleaned_data["includes"])

    def clean_excludes(self) -> list[int]:
        return _id_list(self.cleaned_data["excludes"])

    def filters(self) -> CorpusFilters:
        d = self.cleaned_data
        return CorpusFilters(
            runs=[r.pk for r in d["runs"]],
            variants=list(d["variants"]),
            tasks=[t for t in _IDS.split(d["tasks"].strip()) if t],
            split=d["split"],
            kept_only=d["kept_only"],
            passed_only=d["passed_only"],
            goal_min=d["goal_min"],
            goal_max=d["goal_max"],
            accepted_only=d["accepted_only"],
            exclude_labels=[label.pk for label in d["exclude_labels"]],
            exclude_simulated=d["exclude_simulated"],
            exclude_human_turns=d["exclude_human_turns"],
        )

    @classmethod
    def initial_for(cls, corpus: Corpus) -> dict[str, Any]:
        f = CorpusFilters.from_json(corpus.filters)
        return {
            "version": corpus.version,
            "name": corpus.name,
            "description": corpus.description,
            "runs": f.runs,
            "variants": f.variants,
            "tasks": ", ".join(f.tasks),
            "split": f.split,
            "kept_only": f.kept_only,
            "passed_only": f.passed_only,
            "goal_min": f.goal_min,
            "goal_max": f.goal_max,
            "accepted_only": f.accepted_only,
            "exclude_labels": f.exclude_labels,
            "exclude_simulated": f.exclude_simulated,
            "exclude_human_turns": f.exclude_human_turns,
            "includes": ", ".join(str(i) for i in corpus.includes),
            "excludes": ", ".join(str(i) for i in corpus.excludes),
        }


class ExportForm(forms.Form):
    formats = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    corrections = forms.ChoiceField(
        choices=[
            ("apply", "apply corrections (text and later histories)"),
            ("cut", "cut each dialogue before its first correction"),
        ],
        initial="apply",
        widget=forms.RadioSelect,
    )
    llm_calls = forms.BooleanField(required=False, label="Full JSONL: include every LLM call")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        formats = registry()
        self.fields["formats"].choices = [(name, f.title) for name, f in formats.items()]
        self.fields["formats"].initial = list(formats)


@requires(Capability.VIEW)
def corpus_list(request: HttpRequest) -> HttpResponse:
    corpora = Corpus.objects.prefetch_related("versions").order_by("name")
    return render(request, "corpora/list.html", {"corpora": corpora})


def _tally(filters: CorpusFilters, includes: list[int], excludes: list[int], corpus: Corpus | None) -> dict[str, Any]:
    tally = counts(filters, includes, excludes)
    overrides = corpus.overrides if corpus else []
    candidates, steps = funnel(filters)
    return {
        "counts": tally,
        "missing": [(k, OVERRIDE_KINDS[k]) for k in missing_overrides(tally.needs(), overrides)],
        "candidates": candidates,
        "funnel": steps,
        "removers": [step for step in steps if step.removed],
    }


def _form_tally(form: CorpusForm, corpus: Corpus | None) -> dict[str, Any]:
    if not form.is_valid():
        return {"invalid": True}
    return _tally(form.filters(), form.cleaned_data["includes"], form.cleaned_data["excludes"], corpus)


@requires(Capability.CURATE)
def corpus_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    corpus = get_object_or_404(Corpus, pk=pk) if pk else None
    if request.method == "POST":
        form = CorpusForm(request.POST)
        if form.is_valid():
            try:
                saved = corpus_save(
                    corpus_id=corpus.pk if corpus else None,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    filters=form.filters(),
                    includes=form.cleaned_data["includes"],
                    excludes=form.cleaned_data["excludes"],
                    version=form.cleaned_data["version"],
                    user=request.user,
                )
            except Conflict as conflict:
                form.add_error(None, f"Not saved: {conflict.message}. Reload to see it, then apply your changes.")
            except ValueError as bad:
                form.add_error(None, f"Not saved: {bad}.")
            else:
                messages.success(request, f"Saved the corpus “{saved.name}”.")
                return redirect("corpus_detail", pk=saved.pk)
    else:
        form = CorpusForm(initial=CorpusForm.initial_for(corpus) if corpus else None)
    if form.is_bound:
        tally = _form_tally(form, corpus)
    elif corpus:
        tally = _tally(CorpusFilters.from_json(corpus.filters), corpus.includes, corpus.excludes, corpus)
    else:
        tally = _tally(CorpusFilters(), [], [], None)
    context = {"form": form, "corpus": corpus, **tally}
    return render(request, "corpora/edit.html", context, status=400 if form.errors else 200)


@requires(Capability.CURATE)
@require_POST
def corpus_counts(request: HttpRequest) -> HttpResponse:
    """The builder's live panel: what the filters select now, and which overrides that needs."""
    corpus_id = request.POST.get("corpus")
    corpus = Corpus.objects.filter(pk=corpus_id).first() if corpus_id and corpus_id.isdigit() else None
    form = CorpusForm(request.POST)
    form.fields["name"].required = False  # the counts follow the filters before the corpus has a name
    context = {"corpus": corpus, "form": form, **_form_tally(form, corpus)}
    return render(request, "corpora/edit.html#counts", context)


@requires(Capability.VIEW)
def corpus_detail(request: HttpRequest, pk: int) -> HttpResponse:
    corpus = get_object_or_404(Corpus, pk=pk)
    filters = CorpusFilters.from_json(corpus.filters)
    tally = counts(filters, corpus.includes, corpus.excludes)
    versions = _versions(corpus)
    context = {
        "corpus": corpus,
        "filters": filters,
        "counts": tally,
        "missing": [(k, OVERRIDE_KINDS[k]) for k in missing_overrides(tally.needs(), corpus.overrides)],
        "needed": [(k, OVERRIDE_KINDS[k]) for k in tally.needs()],
        "versions": versions,
        "writing": any(not v.is_done for v in versions),
        "export_form": ExportForm(),
        "excluded_labels": list(Label.objects.filter(pk__in=filters.exclude_labels).values_list("name", flat=True)),
        **page_context("corpus_detail", corpus=corpus),  # what other apps add (evaluation: its form and jobs)
    }
    return render(request, "corpora/detail.html", context)


@requires(Capability.VIEW)
def corpus_versions(request: HttpRequest, pk: int) -> HttpResponse:
    """The versions table alone (polled while a version is being written)."""
    corpus = get_object_or_404(Corpus, pk=pk)
    versions = _versions(corpus)
    context = {"corpus": corpus, "versions": versions, "writing": any(not v.is_done for v in versions)}
    return render(request, "corpora/detail.html#versions", context)


def _versions(corpus: Corpus) -> list[CorpusVersion]:
    versions = list(corpus.versions.select_related("created_by"))
    for version in versions:
        version.manifest_text = json.dumps(version.manifest, indent=1, ensure_ascii=False)
        version.training = _training_facts(version)
    return versions


def _training_facts(version: CorpusVersion) -> dict[str, Any] | None:
    """What a trainer needs from a written version: where dataset_info.json is once unzipped, and the cutoff_len
    its records need (their longest, per file, in the unit they were measured in)."""
    if version.status != VersionStatus.SUCCEEDED:
        return None
    manifest = version.manifest
    layout = manifest.get("layout") or {"folder": Path(version.path).stem, "dataset_info": None}
    lengths = manifest.get("record_lengths")
    files = [
        {
            "name": name,
            "lines": facts.get("lines"),
            "longest": facts["longest_record"],
            "over": facts.get("records_over_1024"),
            "trained": facts.get("in_dataset_info", True),
        }
        for name, facts in manifest.get("files", {}).items()
        if "longest_record" in facts
    ]
    longest = max((f["longest"] for f in files if f["trained"]), default=None)
    return {"layout": layout, "lengths": lengths, "files": files, "longest": longest}


@requires(Capability.CURATE)
@require_POST
def corpus_override(request: HttpRequest, pk: int) -> HttpResponse:
    corpus = get_object_or_404(Corpus, pk=pk)
    kind = request.POST.get("kind", "")
    try:
        if request.POST.get("withdraw"):
            override_withdraw(corpus_id=corpus.pk, kind=kind)
            messages.success(request, "Override withdrawn.")
        else:
            override_record(corpus_id=corpus.pk, kind=kind, reason=request.POST.get("reason", ""), user=request.user)
            messages.success(request, "Override recorded; it goes into every export's manifest.")
    except ValueError as bad:
        messages.error(request, f"Not recorded: {bad}.")
    return redirect("corpus_detail", pk=corpus.pk)


@requires(Capability.CURATE)
@require_POST
def corpus_export_view(request: HttpRequest, pk: int) -> HttpResponse:
    corpus = get_object_or_404(Corpus, pk=pk)
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose at least one format.")
        return redirect("corpus_detail", pk=corpus.pk)
    options = ExportOptions(corrections=form.cleaned_data["corrections"], llm_calls=form.cleaned_data["llm_calls"])
    try:
        version = corpus_version_export(
            corpus_id=corpus.pk, formats=form.cleaned_data["formats"], options=options, created_by=request.user
        )
    except ValueError as bad:
        messages.error(request, f"Not exported: {bad}.")
    else:
        held = len(version.dialogue_ids)
        messages.success(
            request, f"Version {version.number} frozen: {held} dialogue{'s' if held != 1 else ''}; writing its files."
        )
    return redirect("corpus_detail", pk=corpus.pk)


@requires(Capability.CURATE)
def corpus_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The frozen zip, streamed from disk."""
    version = get_object_or_404(CorpusVersion.objects.select_related("corpus"), pk=pk)
    if version.status != VersionStatus.SUCCEEDED:
        raise Http404(f"Version {version.number} is {version.status}; there is nothing to download yet.")
    try:
        path = version_path(version)
        stream = path.open("rb")
    except FileNotFoundError as gone:
        raise Http404("The file of this version is gone from the export directory.") from gone
    name = f"{slugify(version.corpus.name) or 'corpus'}-v{version.number}.zip"
    return FileResponse(stream, as_attachment=True, filename=name, content_type="application/zip")
