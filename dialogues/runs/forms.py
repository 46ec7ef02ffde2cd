"""The run launcher's form: every parameter of a run, turned into a RunConfig."""

from __future__ import annotations

from django import forms

from dialogues.engine.config import RunConfig, Sampling, Variant
from dialogues.engine.prompts import BUILTIN_NAME, PromptSet
from dialogues.prompt_sets.services import prompt_set_get, prompt_sets


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
    prompt_set = forms.ChoiceField(
        required=False,
        label="Prompt set",
        help_text="The templates every call renders: the built-in set, or one made on Prompts.",
    )
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
        self.fields["prompt_set"].choices = [(s.name, s.label) for s in prompt_sets()]
        self.fields["prompt_set"].initial = BUILTIN_NAME

    def chosen_prompt_set(self) -> PromptSet:
        return prompt_set_get(self.cleaned_data.get("prompt_set") or BUILTIN_NAME)

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
