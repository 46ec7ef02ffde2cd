"""Reads. Query functions the views and services share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum

from dialogues.engine.actions import Action, ActionType
from dialogues.engine.config import RunConfig
from dialogues.engine.context import Profile, RelationshipType, TaskSpec, agent_context, omniscient_context
from dialogues.engine.state import DialogueState, NsiStep, Proposal
from dialogues.engine.state import Turn as EngineTurn
from dialogues.engine.strategy import Branch as EngineBranch
from dialogues.models import (
    AgentProfile,
    Dialogue,
    DialogueStatus,
    ImportJob,
    Relationship,
    Run,
    Scenario,
    StepRating,
    Task,
    Turn,
)


@dataclass(frozen=True)
class TaskFilters:
    q: str = ""
    source: str = ""
    scenario_source: str = ""
    split: str = ""
    hard: bool | None = None
    relationship: str = ""
    codename: str = ""


def task_list(filters: TaskFilters) -> QuerySet[Task]:
    tasks = Task.objects.select_related("scenario", "agent1", "agent2")
    if filters.q:
        for word in filters.q.split():
            tasks = tasks.filter(
                Q(scenario__codename__icontains=word)
                | Q(scenario__text__icontains=word)
                | Q(scenario__agent1_goal__icontains=word)
                | Q(scenario__agent2_goal__icontains=word)
                | Q(agent1__first_name__icontains=word)
                | Q(agent1__last_name__icontains=word)
                | Q(agent2__first_name__icontains=word)
                | Q(agent2__last_name__icontains=word)
                | Q(external_id__iexact=word)
            )
    if filters.source:
        tasks = tasks.filter(source=filters.source)
    if filters.scenario_source:
        tasks = tasks.filter(scenario__source=filters.scenario_source)
    if filters.split:
        tasks = tasks.filter(split=filters.split)
    if filters.hard is not None:
        tasks = tasks.filter(hard=filters.hard)
    if filters.relationship:
        tasks = tasks.filter(scenario__relationship=filters.relationship)
    if filters.codename:
        tasks = tasks.filter(scenario__codename=filters.codename)
    return tasks.order_by("scenario__codename", "id")


def task_filter_choices() -> dict[str, list[str]]:
    """Values present in the library, for the filter drop-downs."""
    return {
        "source": list(Task.objects.order_by("source").values_list("source", flat=True).distinct()),
        "scenario_source": list(
            Scenario.objects.exclude(source="").order_by("source").values_list("source", flat=True).distinct()
        ),
        "codename": list(Scenario.objects.order_by("codename").values_list("codename", flat=True).distinct()),
    }


def task_get(pk: int) -> Task:
    return Task.objects.select_related("scenario", "agent1", "agent2").get(pk=pk)


def profile_of(agent: AgentProfile) -> Profile:
    return Profile(
        first_name=agent.first_name,
        last_name=agent.last_name,
        age=agent.age,
        occupation=agent.occupation,
        gender=agent.gender,
        gender_pronoun=agent.gender_pronoun,
        public_info=agent.public_info,
        personality_and_values=agent.personality_and_values,
        secret=agent.secret,
    )


def task_spec(task: Task) -> TaskSpec:
    """The engine's plain view of a task (no Django objects)."""
    contexts = task.contexts or {}
    return TaskSpec(
        scenario=task.scenario.text,
        relationship=RelationshipType(task.scenario.relationship) if task.scenario.relationship else None,
        agents=(profile_of(task.agent1), profile_of(task.agent2)),
        goals=task.scenario.goals,
        contexts=(contexts.get("0", ""), contexts.get("1", "")),
    )


VIEWERS = {"agent1": "What agent 1 sees", "agent2": "What agent 2 sees", "judge": "What the judges see"}


def task_context_text(task: Task, viewer: str) -> str:
    spec = task_spec(task)
    if viewer == "judge":
        return omniscient_context(spec)
    return agent_context(spec, 0 if viewer == "agent1" else 1)


def task_relationships(task: Task) -> QuerySet[Relationship]:
    """Relationship rows between the task's two agents (either order)."""
    a, b = task.agent1_id, task.agent2_id
    return Relationship.objects.filter(Q(agent1_id=a, agent2_id=b) | Q(agent1_id=b, agent2_id=a))


def agent_tasks(agent: AgentProfile) -> QuerySet[Task]:
    return (
        Task.objects.filter(Q(agent1=agent) | Q(agent2=agent))
        .select_related("scenario", "agent1", "agent2")
        .order_by("scenario__codename", "id")
    )


def import_job_list() -> QuerySet[ImportJob]:
    return ImportJob.objects.select_related("created_by")


# --- runs and dialogues ----------------------------------------------------------------------------------


def _engine_turn(turn: Turn) -> EngineTurn:
    try:
        rating = turn.rating
    except StepRating.DoesNotExist:
        rating = None
    return EngineTurn(
        index=turn.index,
        speaker=turn.speaker,
        action=Action(ActionType(turn.action_type), turn.argument),
        branch=EngineBranch(turn.branch),
        forced=turn.forced,
        reason=turn.reason,
        nsi_step=NsiStep(turn.nsi_step) if turn.nsi_step else None,
        proposal=Proposal(turn.proposal) if turn.proposal else None,
        draft=turn.draft,
        own_utility=turn.own_utility,
        other_utility=turn.other_utility,
        rating=None if rating is None else rating_dict(rating),
        human=turn.human,
    )


def rating_dict(rating: StepRating) -> dict[str, Any]:
    return {
        "samples": rating.samples,
        "rejected": rating.rejected,
        "requested": rating.requested,
        "valid": rating.valid,
        "goal_c": rating.goal_c,
        "goal_p": rating.goal_p,
        "terminate": rating.terminate,
        **({"closing": True} if rating.closing else {}),
    }


def dialogue_config(dialogue: Dialogue) -> RunConfig:
    """The configuration a dialogue runs with: its run's, with a fork's changes on top."""
    data = dict(dialogue.run.config)
    changes = (dialogue.changes or {}).get("config") or {}
    for name, value in changes.items():
        data[name] = {**data.get(name, {}), **value} if name == "sampling" else value
    if (dialogue.changes or {}).get("model"):
        data["model"] = dialogue.changes["model"]
    return RunConfig.from_json(data)


def dialogue_state(dialogue: Dialogue) -> DialogueState:
    """The engine's view of a dialogue: task, configuration, turns with their ratings."""
    turns = Turn.objects.filter(dialogue=dialogue).select_related("rating").order_by("index")
    return DialogueState(
        task=task_spec(dialogue.task),
        config=dialogue_config(dialogue),
        turns=tuple(_engine_turn(t) for t in turns),
        seed=dialogue.seed,
        nsi_side=dialogue.nsi_side,
        meta={"hard": dialogue.task.hard, "task": dialogue.task.scenario.codename},
        human_side=dialogue.human_side,
    )


OPEN_STATUSES = (DialogueStatus.PENDING, DialogueStatus.RUNNING, DialogueStatus.PAUSED)


def runs_progress(runs: list[Run]) -> dict[int, dict[str, Any]]:
    """Each run's progress, counted from rows in four grouped queries however many runs there are: dialogues by
    status, settled tasks, turns, tokens and calls, and when its last dialogue ended."""
    ids = [run.pk for run in runs]
    dialogues = Dialogue.objects.filter(run_id__in=ids)
    by_status: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    for run_id, status, n in dialogues.values_list("run_id", "status").annotate(n=Count("id")).order_by():
        by_status[run_id][status] = n
    totals = {
        row["run_id"]: row
        for row in dialogues.values("run_id")
        .annotate(
            tokens=Sum("tokens"),
            calls=Sum("calls_count"),
            turns=Sum("turns_count"),
            kept=Count("id", filter=Q(kept=True)),
            passed=Count("id", filter=Q(filter_passed=True)),
            # a task is settled when none of its attempts is still to run (kept, failed, cancelled, out of attempts)
            unsettled=Count("task_id", filter=Q(status__in=OPEN_STATUSES), distinct=True),
            last_finished=Max("finished_at"),
        )
        .order_by()
    }
    tasks = dict(
        Run.tasks.through.objects.filter(run_id__in=ids).values_list("run_id").annotate(n=Count("id")).order_by()
    )
    progress = {}
    for run in runs:
        counts, total = by_status[run.pk], totals.get(run.pk, {})
        task_count = tasks.get(run.pk, 0)
        progress[run.pk] = {
            "tasks": task_count,
            "settled": task_count - (total.get("unsettled") or 0),
            "attempts": sum(counts.values()),
            **{status.value: counts.get(status, 0) for status in DialogueStatus},
            "kept": total.get("kept") or 0,
            "passed": total.get("passed") or 0,
            "turns": total.get("turns") or 0,
            "tokens": total.get("tokens") or 0,
            "calls": total.get("calls") or 0,
            "last_finished": total.get("last_finished"),
            "status": run.status,
            "status_reason": run.status_reason,
        }
    return progress


def run_progress(run: Run) -> dict[str, Any]:
    """One run's progress (see runs_progress)."""
    return runs_progress([run])[run.pk]
