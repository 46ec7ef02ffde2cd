"""Forms of the task library: the list's search and filters, the selection of tasks a run or an evaluation
starts from (filters, then an optional random sample), and the upload of a SOTOPIA profile set."""

from __future__ import annotations

import random

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from dialogues.library.models import RelationshipType, Split
from dialogues.library.selectors import TaskFilters, task_list
from dialogues.library.sotopia import FILE_KINDS


class TaskFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=200)
    source = forms.ChoiceField(required=False, label="Collection")
    scenario_source = forms.ChoiceField(required=False, label="Scenario source")
    split = forms.ChoiceField(required=False, choices=[("", "any split"), *Split.choices])
    hard = forms.ChoiceField(required=False, choices=[("", "hard or not"), ("1", "hard only"), ("0", "not hard")])
    relationship = forms.ChoiceField(required=False, choices=[("", "any relationship"), *RelationshipType.choices])
    codename = forms.ChoiceField(required=False, label="Codename")

    def __init__(self, *args, choices: dict[str, list[str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", "any collection"), *((v, v) for v in choices["source"])]
        self.fields["scenario_source"].choices = [
            ("", "any scenario source"),
            *((v, v) for v in choices["scenario_source"]),
        ]
        self.fields["codename"].choices = [("", "any codename"), *((v, v) for v in choices["codename"])]

    def filters(self) -> TaskFilters:
        if not self.is_valid():
            return TaskFilters()
        data = self.cleaned_data
        hard = {"1": True, "0": False}.get(data["hard"])
        return TaskFilters(
            q=data["q"].strip(),
            source=data["source"],
            scenario_source=data["scenario_source"],
            split=data["split"],
            hard=hard,
            relationship=data["relationship"],
            codename=data["codename"],
        )


class ImportUploadForm(forms.Form):
    """Up to five SOTOPIA profile files; references may point at rows already in the library."""

    agents = forms.FileField(required=False, label="Agent profiles (.jsonl)")
    scenarios = forms.FileField(required=False, label="Environment profiles / scenarios (.jsonl)")
    relationships = forms.FileField(required=False, label="Relationship profiles (.jsonl)")
    tasks = forms.FileField(required=False, label="Env-agent combos / tasks (.jsonl)")
    hard = forms.FileField(required=False, label="Hard subset (.json)")
    split = forms.ChoiceField(
        choices=Split.choices,
        initial=Split.EVAL,
        help_text="SOTOPIA's 450 tasks are evaluation tasks; training corpora come from train tasks.",
    )
    source = forms.SlugField(
        max_length=50, initial="sotopia", label="Collection", help_text="Collection name shown in the library."
    )

    def clean(self) -> dict:
        data = super().clean()
        uploads = {kind: data.get(kind) for kind in FILE_KINDS if data.get(kind)}
        if not uploads:
            raise forms.ValidationError("Choose at least one file to import.")
        total = sum(f.size for f in uploads.values())
        limit = settings.OMEGA_UPLOAD_MAX_BYTES
        if total > limit:
            raise forms.ValidationError(
                f"The files come to {filesizeformat(total)}; the limit per import is {filesizeformat(limit)} "
                "(OMEGA_UPLOAD_MAX_MB). Nothing was imported."
            )
        data["uploads"] = uploads
        return data

    def files_by_kind(self) -> dict[str, tuple[str, bytes]]:
        return {kind: (upload.name, upload.read()) for kind, upload in self.cleaned_data["uploads"].items()}


class TaskSelectionForm(TaskFilterForm):
    """The library's filters, plus a random sample of N of the matching tasks."""

    sample = forms.IntegerField(
        required=False,
        min_value=1,
        label="Random sample of",
        help_text="Leave empty to take every matching task.",
        error_messages={"min_value": "A sample needs at least 1 task; leave it empty to take every matching task."},
    )
    sample_seed = forms.IntegerField(required=False, initial=0, label="Sample seed")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # No min attribute: the browser would refuse a sample of 0 before the launcher's estimate panel is asked,
        # which would then go on showing every task; the server refuses it with the reason instead.
        self.fields["sample"].widget.attrs.pop("min", None)

    def clean(self) -> dict:
        data = super().clean()
        size = data.get("sample")
        if size is not None and not self.errors:
            matching = task_list(self.filters()).count()
            if matching and size > matching:
                self.add_error(
                    "sample",
                    f"A sample of {size} is more than the {matching} task{'s' if matching != 1 else ''} selected: "
                    f"choose 1 to {matching}, or leave it empty to take them all.",
                )
        return data

    def tasks(self) -> list:
        chosen = list(task_list(self.filters()))
        size = self.cleaned_data.get("sample") if self.is_valid() else None
        if size and size < len(chosen):
            seed = self.cleaned_data.get("sample_seed") or 0
            chosen = sorted(random.Random(seed).sample(chosen, size), key=lambda t: (t.scenario.codename, t.pk))
        return chosen
