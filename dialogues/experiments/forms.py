"""The experiment forms: forking a dialogue (one fork or a counterfactual batch, and each setting's changes), a
person's action for the side they play, and the two dialogues to compare."""

from __future__ import annotations

from django import forms

from dialogues.engine.actions import ActionType, UnusableAnswer
from dialogues.engine.branches import STRATEGIES, STRATEGY_MEANINGS
from dialogues.engine.config import RunConfig
from dialogues.engine.prompts import SPECS, PromptSet, builtin
from dialogues.engine.stepper import HUMAN_TEXT_LIMIT, human_action
from dialogues.prompt_sets.services import prompt_set_get, prompt_sets
from dialogues.runs.models import Dialogue

STRATEGY_FORCING = [("", "as the method decides")] + [
    (branch.value, f"force {branch.value} ({STRATEGY_MEANINGS[branch].split(':')[0]})") for branch in STRATEGIES
]
STRATEGY_HELP = "; ".join(f"{branch.value}: {STRATEGY_MEANINGS[branch]}" for branch in STRATEGIES)


# the configuration values a fork may change, with the form field that edits each
FORK_NUMBERS = ("nsi_goal_c_max", "goal_p_high", "ssi_goal_c_max", "judge_samples", "max_turns")


class ForkSettingsForm(forms.Form):
    """One setting of an experiment: what it changes from the parent's configuration. Every field starts at the
    parent's value; only values that differ become changes."""

    force_strategy = forms.ChoiceField(
        choices=STRATEGY_FORCING, required=False, label="Strategy from here", help_text=STRATEGY_HELP
    )
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
    prompt_set = forms.ChoiceField(
        required=False,
        label="Prompt set",
        help_text="The templates every call from here renders (Prompts lists them).",
    )

    def __init__(self, *args, base: RunConfig, simulated: bool, prompts: PromptSet | None = None, **kwargs) -> None:
        self.base = base
        self.base_prompts = prompts or builtin()
        initial = {name: getattr(base, name) for name in FORK_NUMBERS}
        initial.update(
            force_strategy=base.force_strategy,
            disable_ssi="SSI" in base.disabled_strategies,
            disable_nsi="NSI" in base.disabled_strategies,
            temperature=base.sampling.temperature,
            model=base.model,
            prompt_set=self.base_prompts.name,
        )
        super().__init__(*args, initial=initial, **kwargs)
        self.fields["prompt_set"].choices = prompt_set_choices()
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

    def prompt_set_change(self) -> PromptSet | None:
        """The prompt set chosen, if it is not the parent's (a name is one set; the built-in one is this
        installation's files, which the parent renders with too)."""
        name = self.cleaned_data.get("prompt_set")
        return None if not name or name == self.base_prompts.name else prompt_set_get(name)


def prompt_set_choices() -> list[tuple[str, str]]:
    """Every prompt set by name, with its version."""
    return [(s.name, s.label) for s in prompt_sets()]


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


class HumanActionForm(forms.Form):
    action_type = forms.ChoiceField(choices=[(t.value, t.value) for t in ActionType], initial=ActionType.SPEAK.value)
    argument = forms.CharField(
        required=False, max_length=HUMAN_TEXT_LIMIT, widget=forms.Textarea(attrs={"rows": 3}), label="Text"
    )

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors:
            try:
                human_action(data["action_type"], data.get("argument") or "")
            except UnusableAnswer as exc:
                raise forms.ValidationError(f"This action cannot be used: {exc}.") from exc
        return data


class CompareForm(forms.Form):
    a = forms.IntegerField(min_value=1, label="Dialogue A")
    b = forms.IntegerField(min_value=1, label="Dialogue B")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("a") and data.get("a") == data.get("b"):
            raise forms.ValidationError("Choose two different dialogues.")
        for side in ("a", "b"):
            if data.get(side) and not Dialogue.objects.filter(pk=data[side]).exists():
                self.add_error(side, f"There is no dialogue #{data[side]}.")
        return data


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


class PromptSetEditForm(forms.Form):
    """A new prompt set made from `source`: a name, a note and every template. A browser sends a textarea with CRLF
    line ends, so a template whose text is the source's but for line ends is kept exactly as the source's; edited
    ones are saved with LF."""

    name = forms.CharField(max_length=100, help_text="A new name: a set never changes once saved.")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="What you changed.")

    def __init__(self, *args, source: PromptSet, **kwargs) -> None:
        self.source = source
        initial = {"name": f"{source.name} (edited)"[:100], **{f"t_{k}": v for k, v in source.templates.items()}}
        super().__init__(*args, initial=initial, **kwargs)
        for key, spec in SPECS.items():
            self.fields[f"t_{key}"] = forms.CharField(
                required=False,
                strip=False,
                label=key,
                help_text=spec.purpose,
                widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "template-text"}),
            )

    def templates(self) -> dict[str, str]:
        out = {}
        for key in SPECS:
            text = self.cleaned_data.get(f"t_{key}") or ""
            before = self.source.templates.get(key)
            out[key] = before if before is not None and _lf(before) == _lf(text) else _lf(text)
        return out

    def template_fields(self) -> list:
        return [self[f"t_{key}"] for key in SPECS]
