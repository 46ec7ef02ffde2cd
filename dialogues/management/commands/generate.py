"""python manage.py generate --tasks {all,hard,CODENAME…,ID…} --variant dsi — expert self-play, here or on workers."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, close_old_connections, connection
from django.db.models import Q
from tqdm import tqdm

from dialogues.engine.config import RunConfig, Sampling, Variant
from dialogues.engine.llm import LLMError
from dialogues.engine.prompts import BUILTIN_NAME
from dialogues.library.models import Task
from dialogues.llm.backends import configured_backend, profile_lines
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs.driving import db, run_coroutine, run_to_end
from dialogues.runs.estimates import run_estimate
from dialogues.runs.lifecycle import run_create, run_dispatch
from dialogues.runs.models import Run
from dialogues.runs.selectors import run_progress
from dialogues.runs.worker import enqueue_steps

DATABASE_PATIENCE = 300  # seconds `generate --celery` keeps reconnecting while following a run


class Command(BaseCommand):
    help = (
        "Create a run over the chosen tasks and generate its dialogues to the end: in this process (default) or "
        "on Celery workers (--celery). Uses the model in OMEGA_LLM_BASE_URLS / OMEGA_LLM_MODEL, or the simulated "
        "expert when none is configured (or with --simulated). Every parameter of the method has the paper's "
        "default."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tasks",
            nargs="+",
            required=True,
            metavar="all|hard|CODENAME|ID",
            help="all tasks, the hard ones, or the tasks of these scenario codenames and task ids (SOTOPIA: combo ids)",
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
            "--native-turns",
            type=int,
            default=RunConfig.initial_native_turns,
            help="the native start: turns 0..N-1 use the plain prompt and the first step rating follows turn N-1 "
            f"(the method: {RunConfig.initial_native_turns})",
        )
        parser.add_argument(
            "--exit-overrun",
            type=int,
            default=RunConfig.exit_overrun_turns,
            help="turns the negotiation exit may run past the limit (the authors' script: 3)",
        )
        parser.add_argument("--temperature", type=float, default=Sampling.temperature)
        parser.add_argument("--top-p", type=float, default=Sampling.top_p)
        parser.add_argument("--max-tokens", type=int, default=Sampling.max_tokens)
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help=f"dialogues in flight at once (default {settings.OMEGA_MAX_DIALOGUES_IN_FLIGHT})",
        )
        parser.add_argument("--budget-tokens", type=int, help="pause the run when it has used this many tokens")
        parser.add_argument(
            "--celery",
            action="store_true",
            help="enqueue to Celery workers (needs OMEGA_REDIS_URL) and follow the progress here",
        )
        parser.add_argument("--estimate-only", action="store_true", help="print the cost estimate and stop")
        parser.add_argument(
            "--prompt-set", default=BUILTIN_NAME, help="the prompt set every call renders (manage.py prompts list)"
        )

    def _tasks(self, selection: list[str], split: str | None, source: str | None, limit: int | None) -> list[Task]:
        tasks = Task.objects.select_related("scenario").order_by("scenario__codename", "id")
        if selection == ["hard"]:
            tasks = tasks.filter(hard=True)
        elif selection != ["all"]:
            chosen = Q(scenario__codename__in=selection) | Q(external_id__in=selection)
            known = {
                name for row in tasks.filter(chosen).values_list("scenario__codename", "external_id") for name in row
            }
            unknown = sorted(set(selection) - known)
            if unknown:
                raise CommandError(f"no tasks with codename or id {', '.join(unknown)} (or use 'all' or 'hard')")
            tasks = tasks.filter(chosen)
        if split:
            tasks = tasks.filter(split=split)
        if source:
            tasks = tasks.filter(source=source)
        chosen = list(tasks[:limit] if limit else tasks)
        if not chosen:
            raise CommandError("no task matches; import tasks first (manage.py import_sotopia DIR or load_demo)")
        return chosen

    @staticmethod
    def _config(o) -> RunConfig:
        return RunConfig(
            variant=Variant(o["variant"]),
            seed=o["seed"],
            attempts=o["attempts"],
            judge_samples=o["judge_samples"],
            judge_min_valid=max(1, min(RunConfig.judge_min_valid, o["judge_samples"])),
            max_turns=o["max_turns"],
            initial_native_turns=o["native_turns"],
            exit_overrun_turns=o["exit_overrun"],
            sampling=Sampling(temperature=o["temperature"], top_p=o["top_p"], max_tokens=o["max_tokens"]),
        )

    def handle(self, *args, **o):
        tasks = self._tasks(o["tasks"], o["split"], o["source"], o["limit"])
        try:
            backend = configured_backend(simulated=o["simulated"])
            config = self._config(o)
            prompt_set = prompt_set_get(o["prompt_set"])
        except (ValueError, PromptSetMissing) as exc:
            raise CommandError(str(exc)) from exc
        if o["celery"] and settings.CELERY_BROKER_URL.startswith("memory://"):
            raise CommandError(
                "--celery needs a broker that workers share: set OMEGA_REDIS_URL and start "
                "`celery -A omega_web worker` (or leave out --celery to generate in this process)."
            )
        estimate = run_estimate(config=config, tasks=len(tasks), hard=sum(t.hard for t in tasks), model=backend.model)
        self.stdout.write(f"Estimate: {estimate.describe()}.")
        if o["budget_tokens"] and estimate.tokens > o["budget_tokens"]:
            self.stdout.write(
                self.style.WARNING(
                    f"The budget ({o['budget_tokens']:,} tokens) is below the estimate; the run will pause when it is "
                    "used up."
                )
            )
        if o["estimate_only"]:
            return
        name = o["name"] or f"{config.variant.value} · {' '.join(o['tasks'])} · {len(tasks)} tasks"
        label = (
            "SIMULATED expert (offline, deterministic)"
            if backend.simulated
            else (f"{backend.model} at {', '.join(backend.base_urls)}")
        )

        async def check(llms) -> list:
            try:
                llm = llms(backend)
                await llm.check()  # refuse at once if the model is not served
                return await llm.profiles() if not backend.simulated else []
            except LLMError as exc:
                raise CommandError(f"The model is not available: {exc}") from exc

        found = run_coroutine(check)
        for line in profile_lines(found):
            self.stdout.write(line)
        run = run_create(
            server_profiles=[p.as_dict() for p in found],
            created_by=None,
            name=name,
            config=config,
            tasks=tasks,
            backend=backend,
            max_in_flight=o["concurrency"],
            token_budget=o["budget_tokens"],
            prompt_set=prompt_set,
        )
        self.stdout.write(
            f"Run #{run.pk} “{name}”: {len(tasks)} tasks, variant {config.variant.value}, {label}, "
            f"prompt set {prompt_set.label}, "
            f"up to {run.max_in_flight} dialogues in flight."
        )
        started = time.monotonic()
        if o["celery"]:
            enqueue_steps(run_dispatch(run_id=run.pk))
            self._follow(run, started)
        else:
            self._in_process(run, started)
        run.refresh_from_db()
        progress = run_progress(run)
        reason = f" ({run.status_reason})" if run.status_reason else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Run #{run.pk} {run.status}{reason} after {time.monotonic() - started:.1f} s: "
                f"{progress['tasks']} tasks, {progress['attempts']} attempts ({progress['finished']} finished, "
                f"{progress['failed']} failed), "
                f"{progress['passed']} passed the filter, {progress['kept']} kept, late agreements "
                f"{progress['late_agreements']} ({progress['late_only']} failed only for that); "
                f"{progress['calls']} LLM calls, {progress['tokens']:,} tokens."
            )
        )

    def _bar(self, run: Run) -> tqdm:
        return tqdm(total=run.tasks.count(), unit="task", desc="tasks settled", dynamic_ncols=True, mininterval=1.0)

    @staticmethod
    def _show(bar: tqdm, progress: dict, started: float) -> None:
        elapsed = max(1e-6, time.monotonic() - started)
        bar.update(progress["settled"] - bar.n)
        bar.set_postfix(
            turns=progress["turns"],
            running=progress["running"],
            failed=progress["failed"],
            tok_s=f"{progress['tokens'] / elapsed:,.0f}",
        )

    def _in_process(self, run: Run, started: float) -> None:
        bar = self._bar(run)
        seen = {"at": 0.0}

        def progress_of_run() -> dict:
            return run_progress(Run.objects.get(pk=run.pk))

        async def on_step(report) -> None:
            if report.kind == "failed":
                bar.write(f"  dialogue #{report.dialogue_id} failed: {report.failure}")
            now = time.monotonic()
            if now - seen["at"] >= 1.0 or report.finished:
                seen["at"] = now
                self._show(bar, await db(progress_of_run), started)

        try:
            run_coroutine(lambda llms: run_to_end(run.pk, llms, on_step=on_step))
        finally:
            self._show(bar, run_progress(Run.objects.get(pk=run.pk)), started)
            bar.close()

    def _follow(self, run: Run, started: float) -> None:
        """Poll the rows until the workers are done; Ctrl-C stops following, not the run."""
        bar = self._bar(run)
        lost_since: float | None = None
        try:
            while True:
                try:
                    run.refresh_from_db()
                    progress = run_progress(run)
                except OperationalError as exc:  # the database went away (restart, failover): reconnect and go on
                    close_old_connections()
                    connection.close()
                    lost_since = lost_since or time.monotonic()
                    if time.monotonic() - lost_since > DATABASE_PATIENCE:
                        raise CommandError(
                            f"the database has been unreachable for {DATABASE_PATIENCE} s: {exc}. Run #{run.pk} "
                            "goes on on the workers; follow it with `manage.py runs status`."
                        ) from exc
                    bar.write(f"The database connection was lost ({str(exc).strip()[:120]}); reconnecting…")
                    time.sleep(1.0)
                    continue
                lost_since = None
                self._show(bar, progress, started)
                if run.status != "running":
                    break
                time.sleep(1.0)
        except KeyboardInterrupt:
            bar.write(f"Stopped following; run #{run.pk} goes on on the workers.")
        finally:
            bar.close()
