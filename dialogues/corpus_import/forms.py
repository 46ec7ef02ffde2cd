"""The corpus upload form: the file (up to OMEGA_CORPUS_UPLOAD_MAX_MB), its format, the split of tasks rebuilt
from SFT prompts, and whether to skip bad records."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from dialogues.library.models import Split


class CorpusImportForm(forms.Form):
    """One corpus file: an omega-web export (zip or JSONL) or SOTOPIA SFT records (JSONL or a JSON array)."""

    file = forms.FileField(label="Corpus file (.zip, .jsonl or .json)")
    format = forms.ChoiceField(
        choices=[("auto", "recognise from the records"), ("full", "omega-web full fidelity"),
                 ("sotopia-sft", "SOTOPIA SFT (alpaca, prompt/result, input/output)")],
        initial="auto",
    )  # fmt: skip
    skip_bad = forms.BooleanField(
        required=False,
        label="Skip bad records",
        help_text="Import the good records and list every skipped line. Unticked: one bad record imports nothing.",
    )
    split = forms.ChoiceField(
        choices=Split.choices,
        initial=Split.TRAIN,
        help_text="For tasks rebuilt from SFT prompts (full exports carry each task's split).",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.OMEGA_CORPUS_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {filesizeformat(upload.size)}; uploads are limited to {filesizeformat(limit)} "
                "(OMEGA_CORPUS_UPLOAD_MAX_MB). Larger files: python manage.py import_corpus FILE."
            )
        return upload
