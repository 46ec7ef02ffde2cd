"""Evaluation runs (benchmarking trained social agents, paper A.3): each side of a SOTOPIA task played by a named
model with plain prompts (variant plain: no strategy, no rating, no filter), in self-play or against a reference
model; who speaks first in reference mode follows the paper's partition over a task order (the combo file's by
default). A run records everything needed to repeat it and exports it as one JSON manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from dialogues.engine.config import RunConfig, Variant
from dialogues.engine.prompts import BUILTIN_NAME, PromptSet
from dialogues.library.models import Task
from dialogues.llm.backends import Backend
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs.lifecycle import run_create
from dialogues.runs.models import Dialogue, DialogueStatus, Run, RunKind, Setting
from dialogues.runs.starting import run_start
from evaluation import partition, report
from evaluation.judges import EPISODE, RELEVANCE
from evaluation.models import EvaluationJob, JobStatus

MANIFEST_SCHEMA = "omega-web/benchmark/1"
COMBO_FILE = "sotopia_env_agent_combo_storages.jsonl"


class BenchmarkError(ValueError):
    pass


@dataclass(frozen=True)
class Order:
    """The task order the paper's indices are applied over, and the partition it gives (reference speaks first)."""

    source: str  # "combo file" or the file name given
    pks: list[str]
    reference_first: set[str]
    partition_source: str
    hard_check: dict[str, Any]
    from_file: bool = False  # a partition given directly: it names the tasks, whatever the order


def default_order() -> list[str]:
    path = Path(settings.OMEGA_SOTOPIA_DIR) / COMBO_FILE
    if not path.is_file():
        raise BenchmarkError(f"the SOTOPIA combo file is missing: {path} (set OMEGA_SOTOPIA_DIR)")
    return partition.combo_order(path)


def resolve_order(*, order_file: Path | None = None, partition_file: Path | None = None) -> Order:
    """The order (the combo file's unless another is given) and the partition: the paper's indices over that
    order, or a partition file given directly. The paper's 32 hard-marked indices are checked against the order."""
    try:
        pks = partition.read_order_file(order_file) if order_file else default_order()
        source = order_file.name if order_file else "combo file"
        if partition_file:
            first = partition.read_partition_file(partition_file)
            partition_source = partition_file.name
        else:
            first = partition.reference_first(pks)
            partition_source = f"the paper's A.3 indices over the {source} order"
    except (OSError, ValueError) as exc:
        raise BenchmarkError(str(exc)) from exc
    hard = set(Task.objects.filter(hard=True).values_list("external_id", flat=True))
    try:
        check = partition.hard_check(pks, hard)
        hard_check = {
            "marked": check.marked,
            "hard": check.hard,
            "mismatched": check.mismatched,
            "fits": check.hard == check.marked,
        }
    except ValueError as exc:  # an order shorter than the paper's 450 tasks
        hard_check = {"error": f"the paper's hard indices cannot be checked: {exc}"}
    return Order(source, pks, first, partition_source, hard_check, from_file=partition_file is not None)


def hard_check_text(check: dict[str, Any], source: str) -> str:
    """The check of the paper's hard-marked indices against the order used, in words."""
    if "error" in check:
        return check["error"]
    fits = "fits" if check["fits"] else "does NOT fit"
    return (
        f"Of the paper's {check['marked']} hard-marked indices, {check['hard']} point to hard tasks under the "
        f"{source} order: the paper's partition {fits} it."
    )


def benchmark_create(
    *,
    name: str,
    setting: str,
    agent: Backend,
    reference: Backend | None,
    tasks: list[Task],
    order: Order | None = None,
    max_turns: int = 20,
    seed: int = 0,
    user: Any = None,
    sides: dict[str, int] | None = None,
    server_profiles: list[dict[str, Any]] | None = None,
    prompt_set: PromptSet | None = None,
) -> Run:
    """An evaluation run over these tasks. Self-play: the agent plays both sides. Reference: the agent plays the
    side the partition gives it (`sides`, combo pk → side, overrides it: a manifest's recorded sides)."""
    setting = Setting(setting)
    if not tasks:
        raise BenchmarkError("no task chosen")
    agent_sides: dict[int, int] = {}
    info: dict[str, Any] = {
        "tasks": len(tasks),
        "hard_tasks": sum(1 for t in tasks if t.hard),
        "splits": {split: sum(1 for t in tasks if t.split == split) for split in sorted({t.split for t in tasks})},
    }
    if setting == Setting.REFERENCE:
        if reference is None:
            raise BenchmarkError("the reference setting needs a reference model")
        if sides is None:
            order = order or resolve_order()
            by_pk = (
                {t.external_id: 1 if t.external_id in order.reference_first else 0 for t in tasks}
                if order.from_file
                else partition.sides(order.pks, order.reference_first)
            )
            missing = [t.external_id for t in tasks if t.external_id not in by_pk]
            if missing:
                raise BenchmarkError(
                    f"{len(missing)} task(s) are not in the {order.source} order, so who speaks first is unknown: "
                    f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}"
                )
            sides = {t.external_id: by_pk[t.external_id] for t in tasks}
            info.update(order=order.source, partition=order.partition_source, hard_check=order.hard_check)
        else:
            info.update(order="manifest", partition="the sides recorded in the manifest")
        agent_sides = {t.pk: sides[t.external_id] for t in tasks}
    else:
        reference = None
    config = RunConfig(variant=Variant.PLAIN, attempts=1, max_turns=max_turns, seed=seed)
    with transaction.atomic():
        return run_create(
            created_by=user if getattr(user, "is_authenticated", False) else None,
            name=name,
            config=config,
            tasks=tasks,
            backend=agent,
            kind=RunKind.EVALUATION,
            setting=setting,
            reference=reference,
            agent_sides=agent_sides,
            benchmark=info,
            server_profiles=server_profiles,
            prompt_set=prompt_set,
        )


@transaction.atomic
def benchmark_launch(**fields: Any) -> Run:
    """A new evaluation run (`benchmark_create` with `fields`), started once committed."""
    run = benchmark_create(**fields)
    run_start(run_id=run.pk)
    return run


# --- the manifest ------------------------------------------------------------------------------------------


def _backend(kind: str, model: str, endpoints: list[str]) -> dict[str, Any]:
    return {"backend": kind, "model": model, "endpoints": list(endpoints)}


def manifest(run: Run) -> dict[str, Any]:
    """Everything that makes the run: models, endpoints (never a key), seeds, prompt versions, the judge and its
    prompt versions of the latest finished evaluation, and the task list with the side the agent plays."""
    rows = run.dialogues.select_related("task").order_by("task__external_id", "attempt")
    job = EvaluationJob.objects.filter(run=run, status=JobStatus.DONE).exclude(judge_model="").first()
    return {
        "schema": MANIFEST_SCHEMA,
        "name": run.name,
        "setting": run.setting,
        "agent": _backend(run.backend, run.model, run.endpoints),
        "reference": _backend(run.reference_backend, run.reference_model, run.reference_endpoints)
        if run.reference_model
        else None,
        "config": run.config,
        "seed": run.seed,
        "prompt_set": run.prompt_set_name,
        "prompt_set_version": run.prompt_set_version,
        "benchmark": run.benchmark,
        "tasks": [{"combo": d.task.external_id, "agent_side": d.agent_side, "seed": d.seed} for d in rows],
        "evaluation": None
        if job is None
        else {
            "judge_model": job.judge_model,
            "judge_endpoints": job.judge_endpoints,
            "versions": job.versions,
            "config": job.config,
            "metrics": job.metrics,
        },
    }


def from_manifest(data: dict[str, Any], *, user: Any = None, name: str | None = None) -> Run:
    """A new run that repeats the one the manifest describes (same models, endpoints, seed, tasks and sides)."""
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise BenchmarkError(f"not a benchmark manifest (schema {MANIFEST_SCHEMA!r} expected)")
    try:
        prompt_set = prompt_set_get(data.get("prompt_set") or BUILTIN_NAME)
    except PromptSetMissing as exc:
        raise BenchmarkError(f"the manifest's prompt set: {exc}") from exc
    if data.get("prompt_set_version") != prompt_set.version:
        raise BenchmarkError(
            f"the manifest was made with the prompt set {prompt_set.name} at {data.get('prompt_set_version')}, this "
            f"installation has it at {prompt_set.version}: the run would not repeat"
        )
    combos = [t["combo"] for t in data["tasks"]]
    tasks = {t.external_id: t for t in Task.objects.filter(external_id__in=combos)}
    missing = [c for c in combos if c not in tasks]
    if missing:
        raise BenchmarkError(f"{len(missing)} task(s) of the manifest are not in the library: {', '.join(missing[:5])}")
    agent, ref = data["agent"], data.get("reference")
    config = RunConfig.from_json(data["config"])
    return benchmark_create(
        name=name or f"{data['name']} (repeated)",
        setting=data["setting"],
        agent=Backend(agent["backend"], agent["model"], tuple(agent["endpoints"])),
        reference=Backend(ref["backend"], ref["model"], tuple(ref["endpoints"])) if ref else None,
        tasks=[tasks[c] for c in combos],
        max_turns=config.max_turns,
        seed=data["seed"],
        user=user,
        sides={t["combo"]: t["agent_side"] for t in data["tasks"]} if data["setting"] == Setting.REFERENCE else None,
        prompt_set=prompt_set,
    )


@transaction.atomic
def benchmark_relaunch(run: Run, *, user: Any = None) -> Run:
    """A new evaluation run from `run`'s manifest, started once committed."""
    again = from_manifest(manifest(run), user=user)
    run_start(run_id=again.pk)
    return again


# --- results -----------------------------------------------------------------------------------------------


@dataclass
class BenchmarkRow:
    """One evaluation run in the layout of the paper's Tables 1–3: GOAL and Overall for all and hard tasks
    (the agent's scores only against a reference; both sides averaged in self-play), and the agent's S-IF."""

    run: Run
    finished: int
    total: int
    goal: dict[str, Any]  # subset -> Interval
    overall: dict[str, Any]
    s_div: float | None
    s_rel: float | None
    s_sif: float | None
    judge: str
    evaluator: str  # whose SOTOPIA-EVAL prompt the judge answered ("" when not judged)


def benchmark_row(run: Run) -> BenchmarkRow:
    ids = list(
        Dialogue.objects.filter(run=run, status=DialogueStatus.FINISHED).order_by("pk").values_list("pk", flat=True)
    )
    srel, _ = report.pick_version(RELEVANCE, ids, None)
    episode, _ = report.pick_version(EPISODE, ids, None)
    table = report.episode_table(ids, episode)
    by_subset = {row["subset"]: row for row in table.rows}
    sif = report.sif_table(ids, srel, episode).rows[2]  # the scored sides: the agent's, or both in self-play
    return BenchmarkRow(
        run=run,
        finished=len(ids),
        total=run.dialogues.count(),
        goal={s: by_subset[s]["GOAL"] for s in report.SUBSETS},
        overall={s: by_subset[s]["Overall"] for s in report.SUBSETS},
        s_div=sif["s_div"],
        s_rel=sif["s_rel"],
        s_sif=sif["s_sif"],
        judge=episode.model if episode else "",
        evaluator=episode.evaluator_label if episode else "",
    )


def leaderboard() -> list[BenchmarkRow]:
    runs = Run.objects.filter(kind=RunKind.EVALUATION).order_by("model", "setting", "-created_at")
    return [benchmark_row(run) for run in runs]
