"""python manage.py generate --tasks {all,hard,CODENAME…} --variant dsi — expert self-play, in this process."""

from __future__ import annotations

import asyncio
import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q
from tqdm import tqdm

from dialogues.engine.config import RunConfig, Sampling, Variant
from dialogues.engine.llm import LLMError
from dialogues.generation import close_llm, configured_backend, make_llm, run_to_end
from dialogues.models import Dialogue, DialogueStatus, Run, Task
from dialogues.services import run_create


class Command(BaseCommand):
    help = (
        "Create a run over the chosen tasks and generate its dialogues to the end in this process. Uses the model "
        "in OMEGA_LLM_BASE_URLS / OMEGA_LLM_MODEL, or the simulated expert when none is configured (or with "
        "--simulated). Every parameter of the method has the paper's default."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tasks",
            nargs="+",
            required=True,
            metavar="all|hard|CODENAME",
            help="all tasks, the hard ones, or the tasks of these scenario codenames",
        )
        parser.add_argument("--split", choices=["train", "eval"], help="only tasks of this split")
        parser.add_argument("--source", help="only tasks of this collection (e.g. sotopia, omega-demo)")
        parser.add_argument("--limit", type=int, help="at most this many tasks")
        parser.add_argument("--variant", choices=[v.value for v in Variant], default=Variant.DSI.value)
        parser.add_argument("--name", help="run name (default: variant and task selection)")
        parser.add_argument("--simulated", action="store_true", help="use the simulated expert")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--attempts", type=int, default=RunConfig.attempts)
        parser.add_argument("--judge-samples", type=int, default=RunConfig.judge_samples)
        parser.add_argument("--max-turns", type=int, default=RunConfig.max_turns)
        parser.add_argument(
            "--exit-overrun",
            type=int,
            default=RunConfig.exit_overrun_turns,
            help="turns the negotiation exit may run past the limit (the authors' script: 3)",
        )
        parser.add_argument("--temperature", type=float, default=Sampling.temperature)
        parser.add_argument("--top-p", type=float, default=Sampling.top_p)
        parser.add_argument("--max-tokens", type=int, default=Sampling.max_tokens)
        parser.add_argument("--concurrency", type=int, default=1, help="dialogues stepped at the same time")

    def _tasks(self, selection: list[str], split: str | None, source: str | None, limit: int | None) -> list[Task]:
        tasks = Task.objects.select_related("scenario").order_by("scenario__codename", "id")
        if selection == ["all"]:
            pass
        elif selection == ["hard"]:
            tasks = tasks.filter(hard=True)
        else:
            known = set(tasks.filter(scenario__codename__in=selection).values_list("scenario__codename", flat=True))
            unknown = sorted(set(selection) - known)
            if unknown:
                raise CommandError(f"no tasks with codename {', '.join(unknown)} (or use 'all' or 'hard')")
            tasks = tasks.filter(scenario__codename__in=selection)
        if split:
            tasks = tasks.filter(split=split)
        if source:
            tasks = tasks.filter(source=source)
        chosen = list(tasks[:limit] if limit else tasks)
        if not chosen:
            raise CommandError("no task matches; import tasks first (manage.py import_sotopia DIR or load_demo)")
        return chosen

    def handle(self, *args, **o):
        tasks = self._tasks(o["tasks"], o["split"], o["source"], o["limit"])
        try:
            backend = configured_backend(simulated=o["simulated"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            config = self._config(o)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        name = o["name"] or f"{config.variant.value} · {' '.join(o['tasks'])} · {len(tasks)} tasks"
        asyncio.run(self._generate(name, config, tasks, backend, o["concurrency"]))

    @staticmethod
    def _config(o) -> RunConfig:
        return RunConfig(
            variant=Variant(o["variant"]),
            seed=o["seed"],
            attempts=o["attempts"],
            judge_samples=o["judge_samples"],
            judge_min_valid=max(1, min(RunConfig.judge_min_valid, o["judge_samples"])),
            max_turns=o["max_turns"],
            exit_overrun_turns=o["exit_overrun"],
            sampling=Sampling(temperature=o["temperature"], top_p=o["top_p"], max_tokens=o["max_tokens"]),
        )

    async def _generate(self, name, config, tasks, backend, concurrency) -> None:
        from asgiref.sync import sync_to_async

        llm = make_llm(backend)
        try:
            try:
                await llm.check()  # refuse at once if the model is not served
            except LLMError as exc:
                raise CommandError(f"The model is not available: {exc}") from exc
            run = await sync_to_async(run_create)(
                created_by=None, name=name, config=config, tasks=tasks, backend=backend
            )
            label = (
                "SIMULATED expert (offline, deterministic)"
                if backend.simulated
                else (f"{backend.model} at {', '.join(backend.base_urls)}")
            )
            self.stdout.write(f"Run #{run.pk} “{name}”: {len(tasks)} tasks, variant {config.variant.value}, {label}")
            started = time.monotonic()
            totals = {"turns": 0, "finished": 0, "failed": 0, "tokens": 0, "calls": 0}
            bar = tqdm(total=len(tasks), unit="task", desc="tasks settled", dynamic_ncols=True, mininterval=1.0)

            settled = sync_to_async(_tasks_settled)

            async def on_step(report) -> None:
                totals["calls"] += report.calls
                totals["tokens"] += report.tokens
                if report.kind == "turn":
                    totals["turns"] += 1
                if report.kind == "failed":
                    totals["failed"] += 1
                    bar.write(f"  dialogue #{report.dialogue_id} failed: {report.failure}")
                if report.finished:
                    totals["finished"] += 1
                if report.finished or report.kind == "failed":
                    bar.update(await settled(run.pk) - bar.n)
                elapsed = max(1e-6, time.monotonic() - started)
                bar.set_postfix(
                    turns=totals["turns"],
                    attempts=totals["finished"],
                    failed=totals["failed"],
                    tok_s=f"{totals['tokens'] / elapsed:.0f}",
                )

            await run_to_end(run.pk, llm, concurrency=concurrency, on_step=on_step)
            bar.update(len(tasks) - bar.n)
            bar.close()
            summary = await sync_to_async(_summary)(run.pk)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Run #{run.pk} done in {time.monotonic() - started:.1f} s: {summary}; "
                    f"{totals['calls']} LLM calls, {totals['tokens']} tokens."
                )
            )
        finally:
            await close_llm(llm)


def _tasks_settled(run_id: int) -> int:
    """Tasks whose attempts are settled (one kept, or a failure), counted from rows."""
    return (
        Dialogue.objects.filter(run_id=run_id)
        .filter(Q(kept=True) | Q(status=DialogueStatus.FAILED))
        .values("task_id")
        .distinct()
        .count()
    )


def _summary(run_id: int) -> str:
    run = Run.objects.get(pk=run_id)
    counts = run.dialogues.aggregate(
        attempts=Count("id"),
        finished=Count("id", filter=Q(status=DialogueStatus.FINISHED)),
        failed=Count("id", filter=Q(status=DialogueStatus.FAILED)),
        passed=Count("id", filter=Q(filter_passed=True)),
        kept=Count("id", filter=Q(kept=True)),
        nsi=Count("id", filter=Q(nsi_used=True)),
    )
    return (
        f"{run.tasks.count()} tasks, {counts['attempts']} attempts ({counts['finished']} finished, "
        f"{counts['failed']} failed), {counts['passed']} passed the filter, {counts['kept']} kept, NSI used in "
        f"{counts['nsi']}"
    )
