"""The dialogue list's filter form: what the list and a run's page filter and sort by, as DialogueFilters."""

from __future__ import annotations

from django import forms

from dialogues.inspection.dialogue_list import DialogueFilters
from dialogues.library.models import Split
from dialogues.runs.models import DialogueStatus


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
