"""Reads of the task library: the filtered task list and its filter choices, one task with its relationships,
an agent's tasks, the import jobs; and the engine's view of a task (its profiles, TaskSpec and context texts)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from dialogues.engine.context import Profile, RelationshipType, TaskSpec, agent_context, omniscient_context
from dialogues.library.models import AgentProfile, ImportJob, Relationship, Scenario, Task


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
