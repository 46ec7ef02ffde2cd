"""Evaluation jobs: one mechanism for a dialogue, a run or a corpus. A job runs its metrics in order — S_div
(embeddings, evaluation/services.py), then the relevance judge (S_rel) and SOTOPIA-EVAL — chunk by chunk, writing
results and progress after every chunk, so the page shows it moving and a stopped worker loses one chunk at most.

Judged results are kept per (judge model, prompt version): another judge's results sit beside the first. A result
whose exact prompt is unchanged (same texts, goals, history) is not asked again; a failed one is. An item the judge
cannot score after the bounded retries is listed on the job with why; the other items still get their scores.

SOTOPIA-EVAL's prompt and answer schema are omega-web's own by default, or sotopia's evaluator's
(`episode_evaluator` "sotopia": evaluation/sotopia_evaluator.py, ADR 0025); every score records which.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dialogues.common.deadlines import deadline, deadline_check, failure_reason
from dialogues.corpora.data import DialogueData, dialogues
from dialogues.engine.prompts import PromptSet, builtin
from dialogues.llm.backends import Backend, close_llm, make_llm
from dialogues.llm.simulated import MODEL_NAME
from dialogues.prompt_sets.services import prompt_set_recorded
from dialogues.runs.models import Dialogue, DialogueStatus
from evaluation import judges, sdiv, sotopia_evaluator
from evaluation.judges import EPISODE, RELEVANCE, JudgeConfig, Judgement
from evaluation.models import EpisodeEvaluator, EpisodeScore, EvaluationJob, JobScope, JobStatus, RelevanceScore
from evaluation.services import sdiv_evaluate

logger = logging.getLogger(__name__)

SDIV = "sdiv"
METRICS = (SDIV, RELEVANCE, EPISODE)
JUDGES = "judges"  # the phase in which both judges run
METRIC_LABELS = {SDIV: "S_div", RELEVANCE: "S_rel (relevance judge)", EPISODE: "SOTOPIA-EVAL", JUDGES: "the judges"}
SOTOPIA_PURPOSE = "eval.sotopia.package"  # SOTOPIA-EVAL with sotopia's evaluator's prompt (the simulated judge's cue)
JUDGE_CHUNK = 100  # dialogues judged at once: their requests go out together (a few thousand for a server to batch)


class JobError(ValueError):
    pass


def judge_backend(*, simulated: bool = False) -> Backend:
    """The judge: OMEGA_JUDGE_BASE_URLS / OMEGA_JUDGE_MODEL if set, else the expert's server and model; the
    simulated judge when none is configured or when asked for (its scores say so: model simulated-expert)."""
    urls = settings.OMEGA_JUDGE_BASE_URLS or settings.OMEGA_LLM_BASE_URLS
    model = settings.OMEGA_JUDGE_MODEL or ("" if settings.OMEGA_JUDGE_BASE_URLS else settings.OMEGA_LLM_MODEL)
    if simulated or not urls:
        return Backend(kind="simulated", model=MODEL_NAME)
    if not model:
        raise JobError("a judge server is set but no model: set OMEGA_JUDGE_MODEL (or OMEGA_LLM_MODEL).")
    return Backend(kind="openai", model=model, base_urls=tuple(urls))


def evaluable(ids: Iterable[int]) -> list[int]:
    """The finished dialogues among `ids`, in id order (only a finished dialogue is evaluated)."""
    return list(
        Dialogue.objects.filter(pk__in=list(ids), status=DialogueStatus.FINISHED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def job_create(
    *,
    scope: str,
    dialogue_ids: Iterable[int],
    metrics: Iterable[str],
    user: Any = None,
    run: Any = None,
    dialogue: Any = None,
    corpus: Any = None,
    simulated: bool = False,
    config: JudgeConfig | None = None,
    alpha: float | None = None,
    evaluator: str = EpisodeEvaluator.OMEGA,
    prompt_set: PromptSet | None = None,
) -> EvaluationJob:
    """A queued job. `evaluator`: whose prompt and answer schema SOTOPIA-EVAL uses (omega, the default, or
    sotopia: the installed package is asked for its prompt version here, so a missing one is said at once).
    `prompt_set`: where our judges' templates come from (the built-in set by default; sotopia's evaluator uses
    sotopia's own prompt whatever the set)."""
    prompt_set = prompt_set or builtin()
    chosen = [m for m in METRICS if m in set(metrics)]
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise JobError(f"unknown metrics {sorted(unknown)}: choose from {', '.join(METRICS)}")
    if not chosen:
        raise JobError("choose at least one metric")
    if evaluator not in EpisodeEvaluator.values:
        raise JobError(
            f"unknown SOTOPIA-EVAL evaluator {evaluator!r}: choose from {', '.join(EpisodeEvaluator.values)}"
        )
    if evaluator == EpisodeEvaluator.SOTOPIA and EPISODE not in chosen:
        raise JobError("sotopia's evaluator scores SOTOPIA-EVAL: choose the sotopia metric with it")
    ids = evaluable(dialogue_ids)
    if not ids:
        raise JobError("nothing to evaluate: no finished dialogue")
    judged = [m for m in chosen if m != SDIV]
    backend = judge_backend(simulated=simulated) if judged else None
    versions = {m: judges.prompt_version(m, prompt_set) for m in judged}
    extra: dict[str, Any] = {}
    if evaluator == EpisodeEvaluator.SOTOPIA:
        try:
            package = sotopia_evaluator.describe()
        except sotopia_evaluator.SotopiaUnavailable as exc:
            raise JobError(str(exc)) from exc
        versions[EPISODE] = package.prompt_version
        extra["sotopia_package"] = package.sotopia
    return EvaluationJob.objects.create(
        scope=JobScope(scope),
        run=run,
        dialogue=dialogue,
        corpus=corpus,
        dialogue_ids=ids,
        metrics=chosen,
        judge_backend=backend.kind if backend else "",
        judge_model=backend.model if backend else "",
        judge_endpoints=list(backend.base_urls) if backend else [],
        config={**(config or JudgeConfig()).to_json(), "alpha": sdiv.ALPHA if alpha is None else alpha, **extra},
        versions=versions,
        prompt_set_name=prompt_set.name,
        prompt_set_version=prompt_set.version,
        episode_evaluator=evaluator,
        progress={"phase": "queued", "done": 0, "total": len(ids) * len(chosen)},
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def job_enqueue(job: EvaluationJob) -> None:
    from evaluation.tasks import evaluation_job_task

    transaction.on_commit(lambda: evaluation_job_task.delay(job.pk))


def job_cancel(job: EvaluationJob) -> bool:
    return bool(
        EvaluationJob.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now()
        )
    )


def _save(job: EvaluationJob, **changes: Any) -> None:
    for name, value in changes.items():
        setattr(job, name, value)
    EvaluationJob.objects.filter(pk=job.pk).update(**changes)


def _cancelled(job: EvaluationJob) -> bool:
    return EvaluationJob.objects.filter(pk=job.pk, status=JobStatus.CANCELLED).exists()


def job_run(job_id: int, on_progress: Callable[[dict[str, Any]], None] | None = None) -> EvaluationJob:
    """Run a queued job to its end (on a worker, or in the CLI's process): S_div first, then both judges together
    (their requests go out side by side, so the judge server stays busy)."""
    taken = EvaluationJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    job = EvaluationJob.objects.get(pk=job_id)
    if not taken:
        return job
    ids = list(job.dialogue_ids)
    judged = [m for m in job.metrics if m != SDIV]
    phases = ([SDIV] if SDIV in job.metrics else []) + ([JUDGES] if judged else [])
    total = len(ids) * len(phases)
    counts: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    try:
        with deadline(settings.OMEGA_EVAL_DEADLINE_SECONDS):
            for step, phase in enumerate(phases):
                base = step * len(ids)

                def progress(done: int, _total: int, *, phase: str = phase, base: int = base) -> None:
                    _save(job, progress={"phase": phase, "done": base + done, "total": total})
                    if on_progress:
                        on_progress(job.progress)
                    deadline_check()  # past OMEGA_EVAL_DEADLINE_SECONDS: the job stops here, failed with the reason

                progress(0, len(ids))
                if phase == SDIV:
                    result = sdiv_evaluate(ids, alpha=job.config.get("alpha", sdiv.ALPHA), on_progress=progress)
                    counts[SDIV] = {
                        "agents": result.agents,
                        "recomputed": result.recomputed,
                        "encoded": result.encoded,
                        "undefined": result.undefined,
                    }
                else:
                    counts.update(_judge(job, judged, ids, problems, progress))
                _save(job, counts=counts, problems=problems[:500])
                if _cancelled(job):
                    return EvaluationJob.objects.get(pk=job.pk)
            _save(
                job,
                status=JobStatus.DONE,
                finished_at=timezone.now(),
                progress={"phase": "done", "done": total, "total": total},
            )
    except Exception as exc:  # the job says why; the worker logs the trace
        logger.exception("evaluation job %s failed", job.pk)
        _save(
            job,
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=failure_reason(exc)[:2000],
            counts=counts,
            problems=problems[:500],
        )
    return job


# --- judged metrics --------------------------------------------------------------------------------------


@dataclass
class Item:
    metric: str
    dialogue_id: int
    prompt: str
    sha: str
    meta: dict[str, Any]
    turn_id: int | None = None  # relevance: the judged action
    speaker: int | None = None
    label: str = ""  # how a problem names it
    evaluator: str = EpisodeEvaluator.OMEGA  # SOTOPIA-EVAL: whose prompt and answer schema
    schema: dict[str, Any] | None = None  # sotopia's evaluator: its answer schema, as the structured output


def _lines(data: DialogueData) -> list[tuple[int, str]]:
    return [(t.index, t.action().transcript_line(data.spec.names[t.speaker])) for t in data.turns]


def job_prompt_set(job: EvaluationJob) -> PromptSet:
    return prompt_set_recorded(job.prompt_set_name, job.prompt_set_version)


def _relevance_items(data: DialogueData, config: JudgeConfig, prompt_set: PromptSet) -> list[Item]:
    lines = _lines(data)
    items = []
    for position, turn in enumerate(data.turns):
        prompt = judges.relevance_prompt(data.spec, turn.speaker, lines, position, config.relevance_history, prompt_set)
        # facts for the simulated judge only (never sent to a server)
        meta = {
            "action_type": turn.action_type,
            "text": turn.text,
            "goal": data.spec.goals[turn.speaker],
            "last": position >= len(data.turns) - 2,
            "seed": data.seed,
            "turn": turn.index,
            "repeated": any(
                t.speaker == turn.speaker and t.action_type == turn.action_type and t.text.strip() == turn.text.strip()
                for t in data.turns[:position]
            ),
        }
        sha = judges.sha256(prompt)
        items.append(Item(RELEVANCE, data.id, prompt, sha, meta, turn.pk, turn.speaker, f"turn {turn.index}"))
    return items


def _episode_meta(data: DialogueData) -> dict[str, Any]:
    ratings = [t.rating for t in data.turns if t.rating and t.rating.get("samples")]
    goals = None
    if ratings:  # for the simulated judge only: each side's goal_c in the last step rating
        samples = ratings[-1]["samples"]
        goals = [sum(s["scores"][step] for s in samples) / len(samples) for step in ("step1", "step2")]
    return {"seed": data.seed, "goals": goals, "turns": len(data.turns)}


def _episode_items(chunk: list[DialogueData], job: EvaluationJob) -> list[Item]:
    if job.episode_evaluator != EpisodeEvaluator.SOTOPIA:
        return [
            Item(EPISODE, d.id, prompt, judges.sha256(prompt), _episode_meta(d), label="episode")
            for d in chunk
            for prompt in [judges.episode_prompt(d.spec, _lines(d), job_prompt_set(job))]
        ]
    # sotopia's prompts for the whole chunk at once (one subprocess); refused if sotopia changed since the job began
    episodes = [sotopia_evaluator.episode(d.spec, [(t.speaker, t.action_type, t.text) for t in d.turns]) for d in chunk]
    package, prompts = sotopia_evaluator.prompts(episodes, expected_version=job.versions[EPISODE])
    schema = sotopia_evaluator.constraint_schema(package)
    return [
        Item(
            EPISODE,
            d.id,
            prompt,
            judges.sha256(prompt),
            _episode_meta(d),
            label="episode",
            evaluator=EpisodeEvaluator.SOTOPIA,
            schema=schema,
        )
        for d, prompt in zip(chunk, prompts, strict=True)
    ]


def _to_ask(job: EvaluationJob, metric: str, chunk: list[DialogueData], config: JudgeConfig) -> tuple[int, list[Item]]:
    """(how many items there are, the ones to ask): an item whose stored result has the same prompt is reused."""
    version = job.versions[metric]
    ids = [d.id for d in chunk]
    if metric == RELEVANCE:
        stored = {
            row.turn_id: row
            for row in RelevanceScore.objects.filter(
                dialogue_id__in=ids, judge_model=job.judge_model, prompt_version=version
            ).only("turn_id", "prompt_sha256", "score")
        }
        items = [i for d in chunk for i in _relevance_items(d, config, job_prompt_set(job))]
        return len(items), [
            i
            for i in items
            if not ((row := stored.get(i.turn_id)) and row.prompt_sha256 == i.sha and row.score is not None)
        ]
    stored_ep: dict[int, list[EpisodeScore]] = {}
    for row in EpisodeScore.objects.filter(
        dialogue_id__in=ids, evaluator=job.episode_evaluator, judge_model=job.judge_model, prompt_version=version
    ).only("dialogue_id", "prompt_sha256", "overall"):
        stored_ep.setdefault(row.dialogue_id, []).append(row)
    items = _episode_items(chunk, job)
    return len(items), [
        i
        for i in items
        if not (
            len(rows := stored_ep.get(i.dialogue_id, [])) == 2
            and all(r.prompt_sha256 == i.sha and r.overall is not None for r in rows)
        )
    ]


async def _ask_all(backend: Backend, items: list[Item], config: JudgeConfig, prompt_set: PromptSet) -> list[Judgement]:
    llm = make_llm(backend)

    def ask(item: Item) -> Any:
        if item.metric == RELEVANCE:
            return judges.judge(
                llm,
                purpose="eval.relevance",
                prompt=item.prompt,
                samples=config.relevance_samples,
                parse=judges.parse_relevance,
                schema=judges.RELEVANCE_SCHEMA,
                config=config,
                meta=item.meta,
                prompt_set=prompt_set,
            )
        sotopia = item.evaluator == EpisodeEvaluator.SOTOPIA
        return judges.judge(
            llm,
            purpose=SOTOPIA_PURPOSE if sotopia else "eval.sotopia",
            prompt=item.prompt,
            samples=config.episode_samples,
            parse=sotopia_evaluator.parse_answer if sotopia else judges.parse_episode,
            schema=item.schema if sotopia else judges.EPISODE_SCHEMA,
            config=config,
            max_tokens=config.episode_max_tokens,
            meta=item.meta,
            prompt_set=prompt_set,
        )

    try:
        return await asyncio.gather(*(ask(item) for item in items))
    finally:
        await close_llm(llm)


def _judge(
    job: EvaluationJob, metrics: list[str], ids: list[int], problems: list[dict[str, Any]], progress: Any
) -> dict[str, dict[str, int]]:
    backend = Backend(kind=job.judge_backend, model=job.judge_model, base_urls=tuple(job.judge_endpoints))
    config = JudgeConfig.from_json(job.config)
    counts = {m: {"judged": 0, "reused": 0, "failed": 0, "requests": 0, "tokens": 0} for m in metrics}
    done = 0
    for start in range(0, len(ids), JUDGE_CHUNK):
        chunk = list(dialogues(ids[start : start + JUDGE_CHUNK], annotations=False))
        fresh: list[Item] = []
        for metric in metrics:
            total, ask = _to_ask(job, metric, chunk, config)
            counts[metric]["reused"] += total - len(ask)
            fresh += ask
        results = asyncio.run(_ask_all(backend, fresh, config, job_prompt_set(job))) if fresh else []
        for item, result in zip(fresh, results, strict=True):
            c = counts[item.metric]
            c["requests"] += result.requests
            c["tokens"] += result.tokens
            c["judged" if result.ok else "failed"] += 1
            if not result.ok:
                problems.append(
                    {"metric": item.metric, "dialogue": item.dialogue_id, "item": item.label, "reason": result.problem}
                )
        for metric, write in ((RELEVANCE, _write_relevance), (EPISODE, _write_episodes)):
            pairs = [(i, r) for i, r in zip(fresh, results, strict=True) if i.metric == metric]
            if pairs:
                write([i for i, _ in pairs], [r for _, r in pairs], job.judge_model, job.versions[metric], config)
        done += len(chunk)
        progress(done, len(ids))
        if _cancelled(job):
            break
    return counts


def _write_relevance(
    items: list[Item], results: list[Judgement], model: str, version: str, config: JudgeConfig
) -> None:
    rows = [
        RelevanceScore(
            turn_id=item.turn_id,
            dialogue_id=item.dialogue_id,
            speaker=item.speaker,
            judge_model=model,
            prompt_version=version,
            prompt_sha256=item.sha,
            score=judges.relevance_mean(result.samples) if result.ok else None,
            samples=result.samples,
            rejected=result.rejected,
            problem=result.problem,
        )
        for item, result in zip(items, results, strict=True)
    ]
    RelevanceScore.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["turn", "judge_model", "prompt_version"],
        update_fields=["prompt_sha256", "score", "samples", "rejected", "problem", "computed_at", "speaker"],
    )


def _write_episodes(items: list[Item], results: list[Judgement], model: str, version: str, config: JudgeConfig) -> None:
    rows = []
    for item, result in zip(items, results, strict=True):
        for speaker in (0, 1):
            means = judges.episode_means(result.samples, speaker) if result.ok else {}
            rows.append(
                EpisodeScore(
                    dialogue_id=item.dialogue_id,
                    speaker=speaker,
                    evaluator=item.evaluator,
                    judge_model=model,
                    prompt_version=version,
                    prompt_sha256=item.sha,
                    **{d.label.lower(): means.get(d.label) for d in judges.DIMENSIONS},
                    overall=means.get("Overall"),
                    samples=[sample[speaker] for sample in result.samples],
                    requested=config.episode_samples,
                    rejected=result.rejected,
                    problem=result.problem,
                )
            )
    dims = [d.label.lower() for d in judges.DIMENSIONS]
    EpisodeScore.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["dialogue", "speaker", "evaluator", "judge_model", "prompt_version"],
        update_fields=[*dims, "overall", "prompt_sha256", "samples", "requested", "rejected", "problem", "computed_at"],
    )
