"""The one place tests build tasks, runs, dialogues, turns, annotations, corpora and accounts.

Two kinds of builders:

- factory-boy factories write rows directly (`TaskFactory()`, `DialogueFactory(turns=[...])`), for tests of what
  is read from rows: reports, pages, permissions;
- `created_run` and `simulated_run` go through the services a researcher's launch goes through (`run_create`,
  then the simulated expert driven to the end), for tests of what generating produces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone
from factory.django import DjangoModelFactory

from dialogues.annotation.models import DialogueAnnotation, TurnAnnotation
from dialogues.corpora.models import Corpus, CorpusVersion, VersionStatus
from dialogues.corpora.selection import CorpusFilters
from dialogues.corpora.services import corpus_save
from dialogues.engine.config import RunConfig
from dialogues.library.models import AgentProfile, Relationship, Scenario, Task
from dialogues.llm.backends import Backend, configured_backend
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.lifecycle import run_create
from dialogues.runs.models import Dialogue, DialogueStatus, LLMCall, Run, StepRating, Turn
from omega_web.roles import Role

PASSWORD = "correct horse battery staple 42"


# --- accounts --------------------------------------------------------------------------------------------------


class UserFactory(DjangoModelFactory):
    """An account with the tests' password and, given `role`, that role's group."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, password=PASSWORD, **kwargs)

    @factory.post_generation
    def role(obj, create, extracted: Role | None, **kwargs):
        if create and extracted is not None:
            obj.groups.add(Group.objects.get_or_create(name=extracted.value)[0])


# --- the task library ------------------------------------------------------------------------------------------


class AgentProfileFactory(DjangoModelFactory):
    class Meta:
        model = AgentProfile

    external_id = factory.Sequence(lambda n: f"agent-{n}")
    first_name = "Ann"


class ScenarioFactory(DjangoModelFactory):
    class Meta:
        model = Scenario

    external_id = factory.Sequence(lambda n: f"scenario-{n}")
    codename = factory.SelfAttribute("external_id")
    text = "t"
    agent1_goal = "g1"
    agent2_goal = "g2"
    relationship = "0"


class RelationshipFactory(DjangoModelFactory):
    class Meta:
        model = Relationship

    external_id = factory.Sequence(lambda n: f"relationship-{n}")
    agent1 = factory.SubFactory(AgentProfileFactory)
    agent2 = factory.SubFactory(AgentProfileFactory, first_name="Bob")
    relationship = "0"


class TaskFactory(DjangoModelFactory):
    """A task with its two agents, its scenario and the agents' relationship (the scenario's type).

    `TaskFactory(key="hard", hard=True)` names the task, its scenario and its agents after `key`."""

    class Meta:
        model = Task
        skip_postgeneration_save = True

    class Params:
        key = factory.Sequence(lambda n: f"task-{n}")

    external_id = factory.SelfAttribute("key")
    scenario = factory.SubFactory(
        ScenarioFactory, external_id=factory.SelfAttribute("..key"), codename=factory.SelfAttribute("..key")
    )
    agent1 = factory.SubFactory(
        AgentProfileFactory, external_id=factory.LazyAttribute(lambda a: f"{a.factory_parent.key}-a")
    )
    agent2 = factory.SubFactory(
        AgentProfileFactory, external_id=factory.LazyAttribute(lambda a: f"{a.factory_parent.key}-b"), first_name="Bob"
    )

    @factory.post_generation
    def relationship(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            RelationshipFactory(
                external_id=f"{obj.external_id}-relationship",
                agent1=obj.agent1,
                agent2=obj.agent2,
                relationship=obj.scenario.relationship,
                **kwargs,
            )


# --- runs, dialogues, turns ------------------------------------------------------------------------------------


class RunFactory(DjangoModelFactory):
    """A run's row alone (no dialogues): a run as a report or a page reads it."""

    class Meta:
        model = Run

    name = factory.Sequence(lambda n: f"run-{n}")
    variant = "dsi"
    config = factory.LazyFunction(dict)
    prompt_set_version = "x"
    backend = "simulated"
    model = "m"


class StepRatingFactory(DjangoModelFactory):
    class Meta:
        model = StepRating

    turn = None  # given, or set by TurnFactory(rating=…)
    dialogue = factory.SelfAttribute("turn.dialogue")
    samples = factory.LazyFunction(list)
    requested = 3
    valid = 3
    goal_c = 5.0
    goal_p = 5.0
    terminate = False


class TurnFactory(DjangoModelFactory):
    """A spoken turn; `rating=(goal_c, goal_p)` rates it."""

    class Meta:
        model = Turn
        skip_postgeneration_save = True

    dialogue = factory.SubFactory("tests.factories.DialogueFactory")
    index = factory.LazyAttribute(lambda t: t.dialogue.turns.count())
    speaker = factory.LazyAttribute(lambda t: t.index % 2)
    action_type = "speak"
    argument = "hi"
    branch = "NSC"

    @factory.post_generation
    def rating(obj, create, extracted: tuple[float, float] | None, **kwargs):
        if create and extracted is not None:
            goal_c, goal_p = extracted
            StepRatingFactory(turn=obj, goal_c=goal_c, goal_p=goal_p, **kwargs)


class DialogueFactory(DjangoModelFactory):
    """A finished dialogue of a run. `turns=[…]` adds its turns in order, each a text (a spoken NSC turn) or the
    fields of `TurnFactory` (`{"branch": "SSI", "rating": (6, 8)}`); `turns_count` follows them."""

    class Meta:
        model = Dialogue
        skip_postgeneration_save = True

    run = factory.SubFactory(RunFactory)
    task = factory.SubFactory(TaskFactory)
    status = DialogueStatus.FINISHED

    @factory.post_generation
    def turns(obj, create, extracted: Iterable[str | dict[str, Any]] | None, **kwargs):
        if not create or extracted is None:
            return
        specs = list(extracted)
        for index, spec in enumerate(specs):
            fields = {"argument": spec} if isinstance(spec, str) else spec
            TurnFactory(dialogue=obj, index=index, **{**kwargs, **fields})
        obj.turns_count = len(specs)
        obj.save(update_fields=["turns_count"])


def run_of_dialogues(
    tasks: Iterable[Task], *, turns: Iterable[str | dict[str, Any]], dialogue: dict[str, Any] | None = None, **run: Any
) -> Run:
    """A run's row (`run` are RunFactory's fields) with one dialogue per task (`dialogue` are DialogueFactory's
    fields), each with these turns."""
    made = RunFactory(**run)
    turns = list(turns)
    for task in tasks:
        DialogueFactory(run=made, task=task, turns=turns, **(dialogue or {}))
    return made


class LLMCallFactory(DjangoModelFactory):
    class Meta:
        model = LLMCall

    dialogue = factory.SubFactory(DialogueFactory)
    turn_index = 0
    step_attempt = 1
    purpose = "act"
    messages = factory.LazyFunction(list)


SIMULATED = configured_backend(simulated=True)


def created_run(
    tasks: Iterable[Task],
    *,
    name: str = "run",
    config: dict[str, Any] | None = None,
    backend: Backend = SIMULATED,
    **options: Any,
) -> Run:
    """A run as the launcher creates it (`run_create`): the first attempt of every task, pending, or paused with
    `start_paused=True`. `config` changes RunConfig (three judge samples unless it says otherwise); `options` are
    run_create's (max_in_flight, token_budget, start_paused…). The simulated expert unless `backend` says."""
    return run_create(
        created_by=None,
        name=name,
        config=RunConfig(**{"judge_samples": 3, **(config or {})}),
        tasks=list(tasks),
        backend=backend,
        **options,
    )


def simulated_run(
    tasks: Iterable[Task],
    *,
    name: str = "simulated",
    config: dict[str, Any] | None = None,
    **options: Any,
) -> Run:
    """`created_run` with the simulated expert, driven to its end in this process."""
    run = created_run(tasks, name=name, config=config, **options)
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    return run


def server_backend(server: Any) -> Backend:
    """The backend of an OpenAI-compatible test server (tests/support/llm_server.py)."""
    return Backend("openai", server.model, (server.base_url,))


def served_run(
    server: Any, tasks: Iterable[Task], *, name: str = "served", config: dict[str, Any] | None = None, **options: Any
) -> Run:
    """`created_run` against a test server, driven to its end in this process."""
    run = created_run(tasks, name=name, config=config, backend=server_backend(server), **options)
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    return run


def scenario_tasks(codename: str) -> list[Task]:
    """The tasks of one scenario, in the order they were created."""
    return list(Task.objects.filter(scenario__codename=codename).order_by("id"))


# --- annotations -----------------------------------------------------------------------------------------------


class TurnAnnotationFactory(DjangoModelFactory):
    """One annotator's annotation of a turn as stored; `labels=[label, …]` attaches labels. (Corrections go through
    `turn_annotation_save`, which keeps the original.)"""

    class Meta:
        model = TurnAnnotation
        skip_postgeneration_save = True

    turn = factory.SubFactory(TurnFactory)
    dialogue = factory.SelfAttribute("turn.dialogue")
    annotator = factory.SubFactory(UserFactory)

    @factory.post_generation
    def labels(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.labels.set(extracted)


class DialogueAnnotationFactory(DjangoModelFactory):
    """One annotator's verdict on a dialogue, submitted."""

    class Meta:
        model = DialogueAnnotation

    dialogue = factory.SubFactory(DialogueFactory)
    annotator = factory.SubFactory(UserFactory)
    decision = "accept"
    submitted_at = factory.LazyFunction(timezone.now)


# --- corpora ---------------------------------------------------------------------------------------------------


class CorpusFactory(DjangoModelFactory):
    """A corpus's row as stored (no checks); `saved_corpus` goes through the curator's service."""

    class Meta:
        model = Corpus

    name = factory.Sequence(lambda n: f"corpus-{n}")


class CorpusVersionFactory(DjangoModelFactory):
    class Meta:
        model = CorpusVersion

    corpus = factory.SubFactory(CorpusFactory)
    number = factory.LazyAttribute(lambda v: v.corpus.versions.count() + 1)
    status = VersionStatus.SUCCEEDED


# A curator's correction in the annotated corpus data (tests/dialogues/conftest.py's corpus_data).
CORRECTED = "Could we split the bus: six seats each, and I help you recruit volunteers?"


def saved_corpus(
    *, user: User | None, name: str, includes: Iterable[int] = (), description: str = "", **filters: Any
) -> Corpus:
    """A corpus as a curator saves it (`corpus_save`); `filters` are CorpusFilters's, simulated dialogues included
    unless they say otherwise."""
    return corpus_save(
        corpus_id=None,
        name=name,
        description=description,
        filters=CorpusFilters(**{"exclude_simulated": False, **filters}),
        includes=list(includes),
        excludes=[],
        version=0,
        user=user,
    )
