"""python manage.py benchmark --setting self-play|reference --tasks all|hard|CODENAME … — evaluate a social agent
the way the paper's Tables 1–3 do (plain prompts, SOTOPIA's rules), optionally judge it, and write its manifest."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from dialogues.engine.llm import LLMError
from dialogues.engine.prompts import BUILTIN_NAME, PromptSet
from dialogues.library.models import Split, Task
from dialogues.llm.backends import Backend, profile_lines
from dialogues.llm.simulated import MODEL_NAME
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get, prompt_set_recorded
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.lifecycle import run_server_profiles_record
from dialogues.runs.models import Run, RunKind, Setting
from dialogues.runs.selectors import run_progress
from evaluation import benchmark, report, sotopia_evaluator
from evaluation.jobs import JobError, job_create, job_run
from evaluation.models import EpisodeEvaluator, JobScope

SETTINGS = {"self-play": Setting.SELF_PLAY, "reference": Setting.REFERENCE}


class Command(BaseCommand):
    help = (
        "Benchmark a social agent: an evaluation run over SOTOPIA tasks (eval split) with plain prompts, in self-play "
        "or against a reference model (who speaks first follows the paper's A.3 partition over the combo file's "
        "order, or --order / --partition), played to the end here; --evaluate judges it (S-IF, SOTOPIA-EVAL). "
        "--manifest FILE repeats a run; --write-manifest RUN_ID writes one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--setting", choices=sorted(SETTINGS), default="self-play")
        parser.add_argument("--tasks", nargs="+", default=["all"], metavar="all|hard|CODENAME")
        parser.add_argument("--limit", type=int, help="at most this many tasks (in the order used)")
        parser.add_argument("--split", choices=["eval", "train", "any"], default="eval", help="the paper uses eval")
        parser.add_argument("--agent-url", action="append", default=[], help="the agent's server (repeatable)")
        parser.add_argument("--agent-model", default="", help="the agent's served model name")
        parser.add_argument("--reference-url", action="append", default=[], help="the reference model's server")
        parser.add_argument("--reference-model", default="", help="the reference model's served name")
        parser.add_argument(
            "--simulated", action="store_true", help="the simulated expert plays where no server is given"
        )
        parser.add_argument("--order", type=Path, help="a task order file (combo ids) for the paper's indices")
        parser.add_argument("--partition", type=Path, help="a partition file: the combo ids where the reference starts")
        parser.add_argument("--max-turns", type=int, default=20)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default="")
        parser.add_argument("--evaluate", action="store_true", help="then judge it: sdiv, srel, sotopia")
        parser.add_argument(
            "--evaluator",
            choices=EpisodeEvaluator.values,
            default=EpisodeEvaluator.OMEGA,
            help="with --evaluate: whose prompt SOTOPIA-EVAL uses, omega (ours) or sotopia (make sotopia)",
        )
        parser.add_argument(
            "--prompt-set",
            default=BUILTIN_NAME,
            help="the prompt set the agents' and the judges' templates come from (manage.py prompts list)",
        )
        parser.add_argument("--manifest", type=Path, help="repeat the run this manifest describes")
        parser.add_argument("--write-manifest", type=int, metavar="RUN_ID", help="print a run's manifest and stop")

    def handle(self, *args, **o):
        if o["write_manifest"] is not None:
            run = Run.objects.filter(pk=o["write_manifest"], kind=RunKind.EVALUATION).first()
            if run is None:
                raise CommandError(f"no evaluation run #{o['write_manifest']}")
            self.stdout.write(json.dumps(benchmark.manifest(run), indent=2))
            return
        if o["evaluate"] and o["evaluator"] == EpisodeEvaluator.SOTOPIA and sotopia_evaluator.unavailable_reason():
            raise CommandError(sotopia_evaluator.unavailable_reason())  # before playing, not after
        try:
            run = self._from_manifest(o) if o["manifest"] else self._create(o)
        except (benchmark.BenchmarkError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self._describe(run)
        self._play(run)
        if o["evaluate"]:
            self._evaluate(run, o["evaluator"])

    def _backend(self, urls: list[str], model: str, simulated: bool, who: str) -> Backend:
        if urls:
            if any(urlsplit(u).username or urlsplit(u).password for u in urls):
                raise CommandError("no credentials in a URL (they would be stored and shown): set OMEGA_LLM_API_KEY")
            if not model:
                raise CommandError(f"--{who}-url needs --{who}-model (the served model name)")
            return Backend("openai", model, tuple(urls))
        if simulated:
            return Backend("simulated", MODEL_NAME)
        raise CommandError(f"say who plays the {who}: --{who}-url and --{who}-model, or --simulated")

    def _create(self, o) -> Run:
        setting = SETTINGS[o["setting"]]
        agent = self._backend(o["agent_url"], o["agent_model"], o["simulated"], "agent")
        reference = (
            self._backend(o["reference_url"], o["reference_model"], o["simulated"], "reference")
            if setting == Setting.REFERENCE
            else None
        )
        order = benchmark.resolve_order(order_file=o["order"], partition_file=o["partition"])
        tasks = self._tasks(o["tasks"], order.pks, o["limit"], o["split"])
        check = order.hard_check
        if setting == Setting.REFERENCE:
            self.stdout.write(f"Partition: {order.partition_source}. {benchmark.hard_check_text(check, order.source)}")
        name = o["name"] or f"{agent.model} · {setting.label} · {' '.join(o['tasks'])} · {len(tasks)} tasks"
        return benchmark.benchmark_create(
            name=name,
            setting=setting,
            agent=agent,
            reference=reference,
            tasks=tasks,
            order=order,
            max_turns=o["max_turns"],
            seed=o["seed"],
            prompt_set=self._prompt_set(o["prompt_set"]),
        )

    @staticmethod
    def _prompt_set(name: str) -> PromptSet:
        try:
            return prompt_set_get(name)
        except PromptSetMissing as exc:
            raise CommandError(str(exc)) from exc

    def _from_manifest(self, o) -> Run:
        try:
            data = json.loads(o["manifest"].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{o['manifest']}: {exc}") from exc
        return benchmark.from_manifest(data, name=o["name"] or None)

    @staticmethod
    def _tasks(selection: list[str], order: list[str], limit: int | None, split: str) -> list[Task]:
        tasks = Task.objects.select_related("scenario")
        if split != "any":
            tasks = tasks.filter(split=Split(split))
        if selection == ["hard"]:
            tasks = tasks.filter(hard=True)
        elif selection != ["all"]:
            tasks = tasks.filter(scenario__codename__in=selection)
        position = {pk: i for i, pk in enumerate(order)}
        chosen = sorted(tasks, key=lambda t: (position.get(t.external_id, len(position)), t.external_id))
        chosen = chosen[:limit] if limit else chosen
        if not chosen:
            raise CommandError(f"no task of the {split} split matches; import the SOTOPIA tasks (import_sotopia DIR)")
        return chosen

    def _describe(self, run: Run) -> None:
        sides = f"against {run.reference_model}" if run.reference_model else "in self-play"
        self.stdout.write(f"Evaluation run #{run.pk} “{run.name}”: {run.model} {sides}, {run.tasks.count()} tasks.")

    def _play(self, run: Run) -> None:
        async def check(llms) -> list:
            found = []
            for backend in filter(None, (Backend.of(run), Backend.reference_of(run))):
                try:
                    await llms(backend).check()
                    found += [] if backend.simulated else await llms(backend).profiles()
                except LLMError as exc:
                    raise CommandError(f"The model is not available: {exc}") from exc
            return found

        found = run_coroutine(check)
        for line in profile_lines(found):
            self.stdout.write(line)
        run_server_profiles_record(run_id=run.pk, profiles=[p.as_dict() for p in found])
        started = time.monotonic()
        run_coroutine(lambda llms: run_to_end(run.pk, llms))
        run.refresh_from_db()
        p = run_progress(run)
        self.stdout.write(
            f"Run #{run.pk} {run.status} after {time.monotonic() - started:.1f} s: {p['finished']} episodes finished, "
            f"{p['failed']} failed; {p['calls']} LLM calls, {p['tokens']:,} tokens."
        )

    def _evaluate(self, run: Run, evaluator: str) -> None:
        ids = list(run.dialogues.filter(status="finished").values_list("pk", flat=True))
        try:
            job = job_create(
                scope=JobScope.RUN,
                dialogue_ids=ids,
                metrics=["sdiv", "srel", "sotopia"],
                run=run,
                evaluator=evaluator,
                prompt_set=prompt_set_recorded(run.prompt_set_name, run.prompt_set_version),
            )
        except JobError as exc:
            raise CommandError(str(exc)) from exc
        job = job_run(job.pk)
        row = benchmark.benchmark_row(run)
        self.stdout.write(
            f"Evaluation #{job.pk} {job.status} (judge {job.judge_model}, SOTOPIA-EVAL by "
            f"{job.get_episode_evaluator_display()}); {len(job.problems)} not scored."
        )
        for subset in ("all", "hard"):
            goal, overall = row.goal[subset], row.overall[subset]
            goal_text, overall_text = report.interval_text(goal), report.interval_text(overall)
            self.stdout.write(f"  {subset:4} tasks {goal.n:>4}  GOAL {goal_text:>13}  Overall {overall_text:>13}")
        self.stdout.write(
            f"  S-IF of the agent ×100: S_div {_f(row.s_div)}  S_rel {_f(row.s_rel)}  S_sif {_f(row.s_sif)}"
        )


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
