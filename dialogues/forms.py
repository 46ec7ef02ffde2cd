from __future__ import annotations

import random

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from dialogues.engine.config import RunConfig, Sampling, Variant
from dialogues.importers.sotopia import FILE_KINDS
from dialogues.inspection import DialogueFilters
from dialogues.models import DialogueStatus, RelationshipType, Split
from dialogues.selectors import TaskFilters


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
    source = forms.SlugField(max_length=50, initial="sotopia", help_text="Collection name shown in the library.")

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


# --- runs ------------------------------------------------------------------------------------------------


class TaskSelectionForm(TaskFilterForm):
    """The library's filters, plus a random sample of N of the matching tasks."""

    sample = forms.IntegerField(
        required=False, min_value=1, label="Random sample of", help_text="Leave empty to take every matching task."
    )
    sample_seed = forms.IntegerField(required=False, initial=0, label="Sample seed")

    def tasks(self) -> list:
        from dialogues.selectors import task_list

        chosen = list(task_list(self.filters()))
        size = self.cleaned_data.get("sample") if self.is_valid() else None
        if size and size < len(chosen):
            seed = self.cleaned_data.get("sample_seed") or 0
            chosen = sorted(random.Random(seed).sample(chosen, size), key=lambda t: (t.scenario.codename, t.pk))
        return chosen


class RunLaunchForm(forms.Form):
    """Every parameter of a run, with the paper's defaults (RunConfig)."""

    name = forms.CharField(max_length=200, required=False, help_text="Default: variant and tasks.")
    variant = forms.ChoiceField(
        choices=[
            (v.value, label)
            for v, label in (
                (Variant.DSI, "DSI — dynamic strategy injection (the method)"),
                (Variant.RAW, "Raw — no injection"),
                (Variant.NSI, "NSI — negotiation workflow from turn 6"),
                (Variant.HNSI, "h-NSI — one side negotiates"),
            )
        ],
        initial=Variant.DSI.value,
    )
    backend = forms.ChoiceField(label="Expert model")
    judge_samples = forms.IntegerField(min_value=1, max_value=20, initial=RunConfig.judge_samples)
    attempts = forms.IntegerField(min_value=1, max_value=10, initial=RunConfig.attempts)
    max_turns = forms.IntegerField(min_value=1, max_value=60, initial=RunConfig.max_turns)
    initial_native_turns = forms.IntegerField(min_value=1, max_value=20, initial=RunConfig.initial_native_turns)
    exit_overrun_turns = forms.IntegerField(min_value=0, max_value=5, initial=RunConfig.exit_overrun_turns)
    nsi_goal_c_max = forms.FloatField(
        min_value=0, max_value=10, initial=RunConfig.nsi_goal_c_max, label="NSI if goal_c ≤"
    )
    goal_p_high = forms.FloatField(min_value=0, max_value=10, initial=RunConfig.goal_p_high, label="goal_p threshold")
    ssi_goal_c_max = forms.FloatField(
        min_value=0, max_value=10, initial=RunConfig.ssi_goal_c_max, label="SSI if goal_c <"
    )
    filter_with_nsi = forms.FloatField(min_value=0, max_value=10, initial=RunConfig.filter_with_nsi)
    filter_without_nsi = forms.FloatField(min_value=0, max_value=10, initial=RunConfig.filter_without_nsi)
    ssi_rule = forms.ChoiceField(
        choices=[("paper", "paper (goal_p ≥ 8.5)"), ("script", "script (goal_p > 8.5)")],
        initial="paper",
        label="SSI rule",
    )
    filter_rule = forms.ChoiceField(choices=[("paper", "paper"), ("script", "script (swapped)")], initial="paper")
    utility_form = forms.ChoiceField(
        choices=[("paper", "paper: value · weight · ratio"), ("script", "script: value · coefficient")], initial="paper"
    )
    termination_overrides_nsi = forms.BooleanField(
        required=False, initial=True, label="A vote to end wins over starting NSI (paper)"
    )
    keep_best = forms.BooleanField(required=False, initial=True, label="Keep the best attempt if none passes")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=Sampling.temperature)
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=Sampling.top_p, label="top_p")
    max_tokens = forms.IntegerField(min_value=1, max_value=65536, initial=Sampling.max_tokens)
    judge_temperature = forms.FloatField(min_value=0, max_value=2, initial=RunConfig.judge_temperature)
    seed = forms.IntegerField(initial=0)
    max_in_flight = forms.IntegerField(
        min_value=1,
        max_value=4096,
        required=False,
        label="Dialogues in flight",
        help_text="Default from the server's settings.",
    )
    token_budget = forms.IntegerField(min_value=1, required=False, help_text="Pause the run at this many tokens.")
    start_paused = forms.BooleanField(required=False, label="Step through by hand (dialogues start paused)")

    def __init__(self, *args, backends: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["backend"].choices = list(backends.items())
        self.fields["backend"].initial = next(iter(backends))

    def config(self) -> RunConfig:
        d = self.cleaned_data
        return RunConfig(
            variant=d["variant"],
            judge_samples=d["judge_samples"],
            judge_min_valid=max(1, min(RunConfig.judge_min_valid, d["judge_samples"])),
            attempts=d["attempts"],
            max_turns=d["max_turns"],
            initial_native_turns=d["initial_native_turns"],
            exit_overrun_turns=d["exit_overrun_turns"],
            nsi_goal_c_max=d["nsi_goal_c_max"],
            goal_p_high=d["goal_p_high"],
            ssi_goal_c_max=d["ssi_goal_c_max"],
            filter_with_nsi=d["filter_with_nsi"],
            filter_without_nsi=d["filter_without_nsi"],
            ssi_rule=d["ssi_rule"],
            filter_rule=d["filter_rule"],
            utility_form=d["utility_form"],
            termination_overrides_nsi=d["termination_overrides_nsi"],
            keep_best=d["keep_best"],
            judge_temperature=d["judge_temperature"],
            seed=d["seed"],
            sampling=Sampling(temperature=d["temperature"], top_p=d["top_p"], max_tokens=d["max_tokens"]),
        )

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors:
            try:
                self.config()
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data


class DialogueFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Task or character")
    text = forms.CharField(
        required=False,
        min_length=3,
        max_length=200,
        label="Words in the turns",
        error_messages={"min_length": "Search the turns for at least 3 characters."},
    )
    split = forms.ChoiceField(required=False, choices=[("", "any split"), *Split.choices])
    hard = forms.ChoiceField(required=False, choices=[("", "hard or not"), ("1", "hard only"), ("0", "not hard")])
    strategy = forms.ChoiceField(
        required=False,
        choices=[("", "any strategy"), ("nsi", "used NSI"), ("ssi", "used SSI"), ("native", "native only")],
    )
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *DialogueStatus.choices])
    passed = forms.ChoiceField(required=False, choices=[("", "filter: any"), ("1", "passed"), ("0", "failed")])
    kept = forms.ChoiceField(required=False, choices=[("", "kept or not"), ("1", "kept"), ("0", "not kept")])
    origin = forms.ChoiceField(
        required=False,
        choices=[("", "any origin"), ("generation", "generated"), ("fork", "forks"), ("imported", "imported")],
    )
    goal_min = forms.FloatField(required=False, min_value=0, max_value=10, label="final goal_c ≥")
    goal_max = forms.FloatField(required=False, min_value=0, max_value=10, label="final goal_c ≤")
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("-id", "newest"),
            ("id", "oldest"),
            ("-final_goal_c", "highest goal_c"),
            ("final_goal_c", "lowest goal_c"),
            ("-turns_count", "most turns"),
            ("task", "task"),
        ],
    )

    def filters(self, *, run: int | None = None) -> DialogueFilters:
        if not self.is_valid():
            return DialogueFilters(run=run)
        d = self.cleaned_data
        flag = {"1": True, "0": False}
        return DialogueFilters(
            run=run,
            q=d["q"].strip(),
            text=d["text"].strip(),
            split=d["split"],
            hard=flag.get(d["hard"]),
            strategy=d["strategy"],
            status=d["status"],
            passed=flag.get(d["passed"]),
            kept=flag.get(d["kept"]),
            goal_min=d["goal_min"],
            goal_max=d["goal_max"],
            origin=d["origin"],
            sort=d["sort"] or "-id",
        )


# --- experiments: forks, counterfactual batches, a person playing one side --------------------------------

STRATEGY_FORCING = [
    ("", "as the method decides"),
    ("NSC", "force NSC (no injection)"),
    ("SSI", "force SSI (perspective taking)"),
    ("NSI", "force NSI (the negotiation workflow)"),
]
# the configuration values a fork may change, with the form field that edits each
FORK_NUMBERS = ("nsi_goal_c_max", "goal_p_high", "ssi_goal_c_max", "judge_samples", "max_turns")


class ForkSettingsForm(forms.Form):
    """One setting of an experiment: what it changes from the parent's configuration. Every field starts at the
    parent's value; only values that differ become changes."""

    force_strategy = forms.ChoiceField(choices=STRATEGY_FORCING, required=False, label="Strategy from here")
    disable_ssi = forms.BooleanField(required=False, label="Disable SSI (→ NSC)")
    disable_nsi = forms.BooleanField(required=False, label="Disable NSI (→ SSI)")
    nsi_goal_c_max = forms.FloatField(min_value=0, max_value=10, label="NSI if goal_c ≤")
    goal_p_high = forms.FloatField(min_value=0, max_value=10, label="goal_p threshold")
    ssi_goal_c_max = forms.FloatField(min_value=0, max_value=10, label="SSI if goal_c <")
    judge_samples = forms.IntegerField(min_value=1, max_value=20)
    max_turns = forms.IntegerField(min_value=1, max_value=60)
    temperature = forms.FloatField(min_value=0, max_value=2)
    model = forms.CharField(
        max_length=200,
        required=False,
        label="Served model",
        help_text="Another model name on the same server (checked before anything starts).",
    )

    def __init__(self, *args, base: RunConfig, simulated: bool, **kwargs) -> None:
        self.base = base
        initial = {name: getattr(base, name) for name in FORK_NUMBERS}
        initial.update(
            force_strategy=base.force_strategy,
            disable_ssi="SSI" in base.disabled_strategies,
            disable_nsi="NSI" in base.disabled_strategies,
            temperature=base.sampling.temperature,
            model=base.model,
        )
        super().__init__(*args, initial=initial, **kwargs)
        if simulated:
            self.fields["model"].disabled = True
            self.fields["model"].help_text = "The simulated expert plays every model; run against a server to switch."

    def changes(self) -> tuple[dict, str]:
        """(configuration changes, model) against the parent's configuration."""
        d, base = self.cleaned_data, self.base
        changes = {name: d[name] for name in FORK_NUMBERS if d[name] != getattr(base, name)}
        if (d["force_strategy"] or "") != base.force_strategy:
            changes["force_strategy"] = d["force_strategy"] or ""
        disabled = sorted({"SSI"} if d["disable_ssi"] else set()) + (["NSI"] if d["disable_nsi"] else [])
        if tuple(sorted(disabled)) != base.disabled_strategies:
            changes["disabled_strategies"] = sorted(disabled)
        if d["temperature"] != base.sampling.temperature:
            changes["sampling"] = {"temperature": d["temperature"]}
        model = (d.get("model") or "").strip()
        return changes, (model if model and model != base.model else "")


class ForkForm(forms.Form):
    """Where to fork, how many forks, and who plays."""

    turn = forms.IntegerField(min_value=-1, label="Share turns up to", help_text="-1: share nothing, from the start")
    mode = forms.ChoiceField(
        choices=[("single", "One fork"), ("batch", "Counterfactual batch: N seeds × settings A and B")],
        initial="single",
        widget=forms.RadioSelect,
    )
    seed = forms.IntegerField(required=False, help_text="One fork: blank keeps the parent's seed (a replay).")
    count = forms.IntegerField(min_value=2, max_value=50, initial=8, label="Seeds per setting (batch)")
    batch_seed = forms.IntegerField(initial=0, label="Seed of the seeds (batch)")
    human_side = forms.ChoiceField(required=False, label="Play a side yourself (one fork)")
    start_paused = forms.BooleanField(required=False, label="Step through by hand (starts paused)")

    def __init__(self, *args, names: tuple[str, str], last_turn: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_turn = last_turn
        self.fields["human_side"].choices = [("", "no, the expert plays both"), ("0", names[0]), ("1", names[1])]
        self.fields["turn"].max_value = last_turn
        self.fields["turn"].widget.attrs["max"] = last_turn

    def clean(self) -> dict:
        data = super().clean()
        if data.get("mode") == "batch" and data.get("human_side"):
            self.add_error("human_side", "A person plays one fork at a time, not a batch.")
        turn = data.get("turn")
        if turn is not None and turn > self.last_turn:
            self.add_error("turn", f"The dialogue has turns 0–{self.last_turn}.")
        return data
