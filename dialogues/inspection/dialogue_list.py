"""The dialogue list: its filters (run, task or character, words in the turns, split, strategy, status, filter
and kept flags, goal_c range, origin), its sort orders, and one page of rows read as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.urls import reverse

from dialogues.runs.models import Dialogue, Turn


@dataclass(frozen=True)
class DialogueFilters:
    run: int | None = None
    q: str = ""  # task codename or character
    text: str = ""  # words in the turns
    split: str = ""
    hard: bool | None = None
    strategy: str = ""  # "nsi", "ssi", "native"
    status: str = ""
    passed: bool | None = None
    kept: bool | None = None
    goal_min: float | None = None
    goal_max: float | None = None
    origin: str = ""  # "generation" or "fork"
    sort: str = "-id"


SORTS = {
    "-id": ("-id",),
    "id": ("id",),
    "-final_goal_c": ("-final_goal_c", "-id"),
    "final_goal_c": ("final_goal_c", "-id"),
    "-turns_count": ("-turns_count", "-id"),
    "task": ("task__scenario__codename", "task_id", "attempt"),
}


# What a row of the list shows, read as plain values (no model instances, no scenario texts or profiles).
LIST_VALUES = {
    "codename": F("task__scenario__codename"),
    "hard": F("task__hard"),
    "agent1_first": F("task__agent1__first_name"),
    "agent1_last": F("task__agent1__last_name"),
    "agent2_first": F("task__agent2__first_name"),
    "agent2_last": F("task__agent2__last_name"),
    "run_kind": F("run__kind"),
}
LIST_FIELDS = (
    "id",
    "run_id",
    "attempt",
    "status",
    "simulated",
    "turns_count",
    "nsi_used",
    "ssi_used",
    "final_goal_c",
    "filter_passed",
    "kept",
    "arm",
    "fork_turn",
)


def dialogue_rows(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page of the list, ready for the template: names joined and links made (one reverse per page)."""
    dialogue_url = reverse("dialogue_detail", args=[0]).removesuffix("0/")
    run_url = reverse("run_detail", args=[0]).removesuffix("0/")
    for row in values:
        row["url"] = f"{dialogue_url}{row['id']}/"
        row["run_url"] = f"{run_url}{row['run_id']}/"
        row["agents"] = (
            f"{row['agent1_first']} {row['agent1_last']}".strip()
            + " & "
            + f"{row['agent2_first']} {row['agent2_last']}".strip()
        )
    return values


def dialogue_list(filters: DialogueFilters) -> QuerySet[Dialogue]:
    dialogues = Dialogue.objects.all()
    if filters.run is not None:
        dialogues = dialogues.filter(run_id=filters.run)
    if filters.q:
        for word in filters.q.split():
            dialogues = dialogues.filter(
                Q(task__scenario__codename__icontains=word)
                | Q(task__agent1__first_name__icontains=word)
                | Q(task__agent1__last_name__icontains=word)
                | Q(task__agent2__first_name__icontains=word)
                | Q(task__agent2__last_name__icontains=word)
            )
    if filters.text:
        dialogues = dialogues.filter(
            Exists(Turn.objects.filter(dialogue=OuterRef("pk"), argument__icontains=filters.text))
        )
    if filters.split:
        dialogues = dialogues.filter(task__split=filters.split)
    if filters.hard is not None:
        dialogues = dialogues.filter(task__hard=filters.hard)
    if filters.strategy == "nsi":
        dialogues = dialogues.filter(nsi_used=True)
    elif filters.strategy == "ssi":
        dialogues = dialogues.filter(ssi_used=True)
    elif filters.strategy == "native":
        dialogues = dialogues.filter(nsi_used=False, ssi_used=False)
    if filters.status:
        dialogues = dialogues.filter(status=filters.status)
    if filters.passed is not None:
        dialogues = dialogues.filter(filter_passed=filters.passed)
    if filters.kept is not None:
        dialogues = dialogues.filter(kept=filters.kept)
    if filters.origin:
        dialogues = dialogues.filter(run__kind=filters.origin)
    if filters.goal_min is not None:
        dialogues = dialogues.filter(final_goal_c__gte=filters.goal_min)
    if filters.goal_max is not None:
        dialogues = dialogues.filter(final_goal_c__lte=filters.goal_max)
    return dialogues.order_by(*SORTS.get(filters.sort, SORTS["-id"]))


def dialogue_page(filters: DialogueFilters, number: Any, per_page: int) -> tuple[Any, list[dict[str, Any]]]:
    """One page of the list and its rows. Counting needs no joins; only the page's rows are read, as values."""
    dialogues = dialogue_list(filters)
    page = Paginator(dialogues.only("id"), per_page).get_page(number)
    start = (page.number - 1) * per_page
    rows = list(dialogues.values(*LIST_FIELDS, **LIST_VALUES)[start : start + per_page])
    return page, dialogue_rows(rows)
