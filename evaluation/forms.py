"""The form that launches an evaluation run: the setting, who plays (a served model or the simulated expert) and
the task order or partition used for who speaks first."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django import forms

from dialogues.engine.prompts import BUILTIN_NAME
from dialogues.llm.backends import Backend
from dialogues.llm.simulated import MODEL_NAME
from dialogues.prompt_sets.services import prompt_sets
from dialogues.runs.models import Setting

_URLS = re.compile(r"[\s,]+")
MAX_ORDER_BYTES = 1024 * 1024


class BenchmarkForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Default: model, setting and task count.")
    setting = forms.ChoiceField(choices=Setting.choices, initial=Setting.SELF_PLAY, widget=forms.RadioSelect)
    agent_model = forms.CharField(max_length=200, required=False, label="Agent under test: served model name")
    agent_urls = forms.CharField(
        max_length=2000,
        required=False,
        label="Agent's server(s)",
        help_text="Base URLs, comma-separated (OpenAI-compatible, e.g. vLLM).",
    )
    agent_simulated = forms.BooleanField(required=False, label="The simulated expert plays the agent (offline)")
    reference_model = forms.CharField(max_length=200, required=False, label="Reference model: served model name")
    reference_urls = forms.CharField(max_length=2000, required=False, label="Reference model's server(s)")
    reference_simulated = forms.BooleanField(required=False, label="The simulated expert plays the reference")
    max_turns = forms.IntegerField(min_value=1, max_value=60, initial=20, help_text="SOTOPIA: 20")
    prompt_set = forms.ChoiceField(
        required=False, label="Prompt set", help_text="The agents' prompt (the agent template) comes from this set."
    )
    seed = forms.IntegerField(initial=0)
    order_file = forms.FileField(
        required=False,
        label="Task order file",
        help_text="One combo id per line (or a JSON list); default: the combo file's order.",
    )
    partition_file = forms.FileField(
        required=False,
        label="Partition file",
        help_text="The combo ids where the reference model speaks first; default: the "
        "paper's A.3 indices over the order.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt_set"].choices = [(s.name, s.label) for s in prompt_sets()]
        self.fields["prompt_set"].initial = BUILTIN_NAME

    def _side(self, who: str) -> Backend | None:
        d = self.cleaned_data
        urls = [u for u in _URLS.split(d.get(f"{who}_urls", "").strip()) if u]
        if d.get(f"{who}_simulated"):
            return Backend("simulated", MODEL_NAME)
        if not urls:
            return None
        if any(urlsplit(u).username or urlsplit(u).password for u in urls):
            self.add_error(
                f"{who}_urls", "No credentials in a URL (they would be stored and shown): set OMEGA_LLM_API_KEY."
            )
            return None
        if not d.get(f"{who}_model"):
            self.add_error(f"{who}_model", "Give the served model name for these servers.")
            return None
        return Backend("openai", d[f"{who}_model"].strip(), tuple(urls))

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.agent = self._side("agent")
        self.reference = self._side("reference") if cleaned.get("setting") == Setting.REFERENCE else None
        if self.agent is None and "agent_model" not in self.errors:
            self.add_error("agent_urls", "Say who plays the agent: its server(s) and model, or the simulated expert.")
        if (
            cleaned.get("setting") == Setting.REFERENCE
            and self.reference is None
            and "reference_model" not in self.errors
        ):
            self.add_error(
                "reference_urls", "Against a reference model: give its server(s) and model, or the simulated expert."
            )
        for name in ("order_file", "partition_file"):
            upload = cleaned.get(name)
            if upload and upload.size > MAX_ORDER_BYTES:
                self.add_error(name, f"{upload.name} is larger than 1 MB: a task order is a list of ids.")
        return cleaned
