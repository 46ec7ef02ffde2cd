"""Pass 2 of a corpus import: write the records the check pass let through, in chunks of CHUNK dialogues, each
chunk its own transaction (so the web app and other workers keep writing meanwhile).

Every row a writer creates (runs, tasks, scenarios, agents) is recorded on the job as it goes, so that a failed
import can be removed again. A dialogue already here (imported before under its key, or made here) is counted and
skipped. FullWriter streams an omega-web full-fidelity file a second time; SftWriter writes the dialogues the check
pass put together, matching each to a library task (or rebuilding a partial task, agents and scenario from what its
prompts showed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction

from dialogues.corpus_import import sft
from dialogues.corpus_import.checks import Plan
from dialogues.corpus_import.stream import Reader
from dialogues.engine.context import RelationshipType, background_seen_by_other, full_background, render_for
from dialogues.library.models import AgentProfile, ImportJob, Scenario, Split, Task
from dialogues.library.selectors import profile_of
from dialogues.runs.keys import local_dialogue_id
from dialogues.runs.models import Branch, Dialogue, DialogueStatus, LLMCall, Run, RunKind, RunStatus, StepRating, Turn

CHUNK = 200


class Writer:
    """What both writers share: the counts, the rows created, and the runs, agents and scenarios they reuse."""

    def __init__(self, job: ImportJob, plan: Plan) -> None:
        self.job = job
        self.plan = plan
        self.created: dict[str, list[int]] = {"runs": [], "tasks": [], "scenarios": [], "agents": []}
        self.counts = {
            "records": plan.records,
            "skipped": plan.bad_count,
            "dialogues": 0,
            "already_here": 0,
            "turns": 0,
            "tasks_created": 0,
            "tasks_reused": 0,
            "runs": 0,
            "eval_split": 0,
        }
        self.runs: dict[str, Run] = {}

    def _counted(self, task: Task, turns: int) -> None:
        self.counts["dialogues"] += 1
        self.counts["turns"] += turns
        self.counts["eval_split"] += task.split == Split.EVAL

    def _here(self, keys: list[str]) -> set[str]:
        """Which of these dialogue keys are here already: imported before under that key, or made here and not
        deleted since (a deleted one is restored from its export). One query per chunk."""
        here = set(Dialogue.objects.filter(external_key__in=keys).values_list("external_key", flat=True))
        local = {pk: key for key in keys if (pk := local_dialogue_id(key)) is not None}
        made_here = Dialogue.objects.filter(pk__in=list(local), external_key="").values_list("pk", flat=True)
        return here | {local[pk] for pk in made_here}

    def _remember(self, kind: str, pk: int) -> None:
        self.created[kind].append(pk)

    def _save_created(self) -> None:
        ImportJob.objects.filter(pk=self.job.pk).update(created=self.created)

    def _run(self, key: str, **values: Any) -> Run:
        """The run imported dialogues of `key` go into: one imported before under the same key, or a new one."""
        if key in self.runs:
            return self.runs[key]
        run = Run.objects.filter(kind=RunKind.IMPORTED, external_key=key).first() if key else None
        if run is None:
            run = Run.objects.create(
                kind=RunKind.IMPORTED,
                external_key=key,
                import_job=self.job,
                status=RunStatus.IMPORTING,
                backend="import",
                config={},
                **values,
            )
            self._remember("runs", run.pk)
            self.counts["runs"] += 1
        self.runs[key] = run
        return run

    def _agent(self, values: dict[str, Any]) -> AgentProfile:
        agent = AgentProfile.objects.filter(external_id=values["external_id"]).first()
        if agent is None:
            agent = AgentProfile.objects.create(**values)
            self._remember("agents", agent.pk)
        return agent

    def _scenario(self, values: dict[str, Any]) -> Scenario:
        scenario = Scenario.objects.filter(external_id=values["external_id"]).first()
        if scenario is None:
            scenario = Scenario.objects.create(**values)
            self._remember("scenarios", scenario.pk)
        return scenario


class FullWriter(Writer):
    """An omega-web full-fidelity file, read again: task lines become (or find) library tasks, dialogues follow."""

    def write(self, path: Path, name: str, progress: Callable[..., None]) -> dict[str, int]:
        tasks: dict[str, Task] = {}
        pending: list[dict[str, Any]] = []
        reader = Reader(path, name)

        def flush() -> None:
            with transaction.atomic():
                here = self._here([record["key"] for record in pending])
                for record in pending:
                    self._dialogue(record, tasks, here)
                self._save_created()
            pending.clear()

        for item in reader.items(
            lambda done, total: progress("writing", done, total, dialogues=self.counts["dialogues"])
        ):
            if item.problem or (item.file, item.line) in self.plan.bad:
                continue
            record = item.value or {}
            if record.get("type") == "task":
                with transaction.atomic():
                    tasks[record["external_id"]] = self._task(record)
                    self._save_created()
                continue
            pending.append(record)
            if len(pending) >= CHUNK:
                flush()
        flush()
        return self.counts

    def _task(self, record: dict[str, Any]) -> Task:
        existing = Task.objects.filter(external_id=record["external_id"]).first()
        if existing is not None:
            self.counts["tasks_reused"] += 1
            return existing
        profiles = record["profiles"]
        agents = [self._agent(dict(a)) for a in profiles["agents"]]
        task = Task.objects.create(
            external_id=record["external_id"],
            scenario=self._scenario(dict(profiles["scenario"])),
            agent1=agents[0],
            agent2=agents[1],
            hard=record["hard"],
            source=record["source"],
            split=record["split"],
            contexts=record.get("contexts") or {},
        )
        self._remember("tasks", task.pk)
        self.counts["tasks_created"] += 1
        return task

    def _dialogue(self, record: dict[str, Any], tasks: dict[str, Task], here: set[str]) -> None:
        key = record["key"]
        if key in here:
            self.counts["already_here"] += 1
            return
        here.add(key)
        task = tasks.get(record["task"])
        if task is None:
            task = tasks[record["task"]] = Task.objects.get(external_id=record["task"])
        run_info = record["run"]
        run = self._run(
            run_info["key"],
            name=run_info["name"],
            variant=run_info["variant"],
            model=run_info["model"],
            prompt_set_name=(run_info.get("prompt_set") or {}).get("name", "built-in"),
            prompt_set_version=run_info["prompt_set_version"],
            simulated=run_info["simulated"],
        )
        run.tasks.add(task)
        turns = record["turns"]
        calls = record.get("llm_calls") or []
        dialogue = Dialogue.objects.create(
            run=run,
            task=task,
            attempt=record["attempt"],
            status=DialogueStatus.FINISHED,
            seed=record["seed"],
            simulated=record["simulated"],
            kept=record["kept"],
            filter_passed=record["filter_passed"],
            filter_note=record["filter_note"],
            final_goal_c=record["final_goal_c"],
            final_goal_p=record["final_goal_p"],
            nsi_used=record["nsi_used"],
            ssi_used=any(t["branch"] == Branch.SSI for t in turns),
            turns_count=len(turns),
            end_reason=record["end_reason"],
            external_key=key,
            import_job=self.job,
            imported={
                "source": record.get("source"),
                "decisions": record["decisions"],
                "adjudication": record["adjudication"],
                "episode_ratings": record.get("episode_ratings") or [],
            },
            calls_count=len(calls),
            tokens=sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls),
        )
        rows = Turn.objects.bulk_create(
            Turn(
                dialogue=dialogue,
                index=t["index"],
                speaker=t["speaker"],
                action_type=t["action_type"],
                argument=t["argument"],
                forced=t["forced"],
                branch=t["branch"],
                reason=t["reason"],
                nsi_step=t["nsi_step"],
                proposal=t["proposal"],
                draft=t["draft"],
                own_utility=t["own_utility"],
                other_utility=t["other_utility"],
                human=t["human"],
                imported={
                    "annotations": t["annotations"],
                    "judge_ratings": t.get("judge_ratings") or [],
                    "corrected": t["corrected"],
                    "correction_reason": t["correction_reason"],
                    "extra": t.get("extra"),
                },
            )
            for t in turns
        )
        StepRating.objects.bulk_create(
            StepRating(
                turn=row,
                dialogue=dialogue,
                **{
                    k: t["rating"][k]
                    for k in ("samples", "rejected", "requested", "valid", "goal_c", "goal_p", "terminate", "closing")
                },
            )
            for row, t in zip(rows, turns, strict=True)
            if t["rating"] is not None
        )
        LLMCall.objects.bulk_create(
            LLMCall(
                dialogue=dialogue,
                step_attempt=0,
                **{
                    k: c.get(k)
                    for k in (
                        "turn_index",
                        "purpose",
                        "messages",
                        "params",
                        "responses",
                        "parsed",
                        "error",
                        "prompt_tokens",
                        "completion_tokens",
                        "cached_tokens",
                        "model",
                    )
                },
                finish_reasons=c.get("finish_reasons") or [],
            )
            for c in calls
        )
        self._counted(task, len(turns))


class SftWriter(Writer):
    """The dialogues the check pass put together from SFT records, with their tasks found or rebuilt."""

    def write(self, path: Path, name: str, progress: Callable[..., None]) -> dict[str, int]:
        collector = self.plan.collector
        model = next((t.model for t in collector.tasks.values() if t.model), "")
        tasks: dict[tuple[str, str, str], Task] = {}
        attempts: dict[int, int] = {}
        total, done = collector.dialogue_count(), 0
        pending: list[sft.SftDialogue] = []

        def flush() -> None:
            with transaction.atomic():
                keys = [_sft_dialogue_key(collector.tasks[d.task], d) for d in pending]
                here = self._here(keys)
                for d, key in zip(pending, keys, strict=True):
                    if key in here:
                        self.counts["already_here"] += 1
                        continue
                    here.add(key)
                    if d.task not in tasks:
                        tasks[d.task] = self._sft_task(collector.tasks[d.task])
                    task = tasks[d.task]
                    run = self._run("", name=f"Imported: {name}"[:200], variant="", model=model,
                                    prompt_set_name="", prompt_set_version="", simulated=False)  # fmt: skip
                    run.tasks.add(task)
                    if task.pk not in attempts:
                        attempts[task.pk] = run.dialogues.filter(task=task).count()
                    self._sft_dialogue(run, task, attempts[task.pk], d, name, key)
                    attempts[task.pk] += 1
                self._save_created()
            pending.clear()
            progress("writing", done, total, dialogues=self.counts["dialogues"])

        for d in collector.dialogues():
            pending.append(d)
            done += 1
            if len(pending) >= CHUNK:
                flush()
        flush()
        return self.counts

    def _sft_dialogue(self, run: Run, task: Task, attempt: int, d: sft.SftDialogue, name: str, key: str) -> None:
        acts = d.acts
        dialogue = Dialogue.objects.create(
            run=run,
            task=task,
            attempt=attempt,
            status=DialogueStatus.FINISHED,
            turns_count=len(acts),
            import_job=self.job,
            external_key=key,
            imported={
                "source": {"format": sft.FORMAT, "file": name, "lines": d.lines, "perspectives": sorted(d.sides)},
            },
        )
        Turn.objects.bulk_create(
            Turn(
                dialogue=dialogue,
                index=i,
                speaker=act.speaker,
                action_type=act.action_type,
                argument=act.argument,
                branch=Branch.IMPORTED,
                imported={"extra": {"line": d.outputs[i]["line"], **d.outputs[i]["extra"]}} if i in d.outputs else {},
            )
            for i, act in enumerate(acts)
        )
        self._counted(task, len(acts))

    def _sft_task(self, t: sft.SftTask) -> Task:
        """The library's task when one has this scenario, these agents in this order and the goals the prompts
        showed; otherwise a task rebuilt from the prompts (partial: what no prompt showed stays unknown)."""
        match = _library_task(t)
        if match is not None:
            self.counts["tasks_reused"] += 1
            return match
        external_id = f"sft-{_sft_task_digest(t)}"
        existing = Task.objects.filter(external_id=external_id).first()
        if existing is not None:
            self.counts["tasks_reused"] += 1
            return existing
        agents = [
            _library_agent(name, t.backgrounds[i] or t.seen[i], own=bool(t.backgrounds[i]))
            or self._agent(_agent_values(name, t.backgrounds[i] or t.seen[i]))
            for i, name in enumerate(t.names)
        ]
        scenario = self._scenario(
            {
                "external_id": external_id,
                "codename": _codename(t.scenario),
                "source": "imported",
                "text": t.scenario,
                "agent1_goal": t.goals[0],
                "agent2_goal": t.goals[1],
                "relationship": "",
                "partial": True,
            }
        )
        task = Task.objects.create(
            external_id=external_id,
            scenario=scenario,
            agent1=agents[0],
            agent2=agents[1],
            source="imported",
            split=self.job.split,
            contexts={str(i): c for i, c in enumerate(t.contexts) if c},
        )
        self._remember("tasks", task.pk)
        self.counts["tasks_created"] += 1
        return task


def _sft_task_digest(t: sft.SftTask) -> str:
    """A rebuilt task is its scenario, its participants in order and the goals the prompts showed."""
    return hashlib.sha256("\x1f".join([t.scenario, *t.names, *t.goals]).encode()).hexdigest()[:16]


def _sft_dialogue_key(t: sft.SftTask, d: sft.SftDialogue) -> str:
    """The same conversation of the same task (scenario, participants, shown goals) gives the same key, whichever
    file brings it; another scenario or goal with the same words is another dialogue."""
    return f"{sft.FORMAT}:{hashlib.sha256(f'{_sft_task_digest(t)}:{d.key}'.encode()).hexdigest()[:32]}"


def _library_task(t: sft.SftTask) -> Task | None:
    for task in (
        Task.objects.filter(scenario__partial=False)
        .select_related("scenario", "agent1", "agent2")
        .filter(agent1__first_name=t.names[0].split(" ")[0], agent2__first_name=t.names[1].split(" ")[0])
    ):
        if (task.agent1.full_name, task.agent2.full_name) != t.names:
            continue
        if (
            render_for(task.scenario.text, "agent_0") != t.scenario
            and render_for(task.scenario.text, "agent_1") != t.scenario
        ):
            continue
        goals = task.scenario.goals
        if all(not t.goals[i] or render_for(goals[i], f"agent_{i}") == t.goals[i] for i in (0, 1)):
            return task
    return None


def _library_agent(name: str, background: str, *, own: bool) -> AgentProfile | None:
    """A complete profile in the library whose background reads exactly as a prompt showed it: in full (the agent's
    own prompt), or as another agent may see it (without the secret, or only identity and public info). The
    other's view must still match one agent only: a name alone matches nobody."""
    if not background or background == name:
        return None
    first = name.split(" ")[0]
    found = []
    for agent in AgentProfile.objects.filter(partial=False, first_name=first):
        if agent.full_name != name:
            continue
        profile = profile_of(agent)
        views = {full_background(profile)}
        if not own:
            views |= {background_seen_by_other(profile, r) for r in RelationshipType} - {""}
        if background in views:
            found.append(agent)
    return found[0] if len(found) == 1 else None


_IDENTITY = re.compile(
    r"^(?P<name>.+?) is a (?P<age>\d{1,3})-year-old (?P<gender>\w+) (?P<occupation>[^.]*)\.\s+"
    r"(?P<pronoun>\S+) pronouns\.\s*(?P<rest>.*)$",
    re.DOTALL,
)
_GENDERS = {"male": "Man", "female": "Woman", "nonbinary": "Nonbinary"}


def _agent_values(name: str, background: str) -> dict[str, Any]:
    """A partial agent profile from the background a prompt showed (SOTOPIA's wording): name, age, gender,
    occupation, pronouns, public info, personality and secret where the text has them; empty where not."""
    first, _, last = name.partition(" ")
    values: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "age": None,
        "source": "imported",
        "partial": True,
    }
    match = _IDENTITY.match(background.strip())
    rest = background.strip()
    if match and match.group("name") == name:
        values.update(
            age=int(match.group("age")),
            gender=_GENDERS.get(match.group("gender").lower(), match.group("gender")),
            occupation=match.group("occupation").strip(),
            gender_pronoun=match.group("pronoun"),
        )
        rest = match.group("rest")
    elif rest == name:
        rest = ""
    rest, _, secret = rest.partition(f"{first}'s secrets:")
    public, _, personality = rest.partition("Personality and values description:")
    values.update(public_info=public.strip(), personality_and_values=personality.strip(), secret=secret.strip())
    digest = hashlib.sha256(f"{name}\x1f{background}".encode()).hexdigest()[:16]
    values["external_id"] = f"sft-{digest}"
    return values


def _codename(scenario: str) -> str:
    words = re.findall(r"[A-Za-z0-9']+", scenario)[:8]
    return ("imported: " + " ".join(words))[:200] or "imported"
