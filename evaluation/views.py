"""Evaluation pages: the S-IF and SOTOPIA-EVAL panel of a dialogue, the panel on a run's page, a run's full report
(the paper's tables and figures, each downloadable as CSV), runs compared, and evaluation jobs (start, progress,
cancel) for a dialogue, a run or a corpus. Pages only lay out what evaluation/report.py prepares."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dialogues.common.figure_csv import figure_csv_response
from dialogues.corpora.data import dialogues as read_dialogues
from dialogues.corpora.models import Corpus
from dialogues.corpora.selection import CorpusFilters, selected
from dialogues.library.forms import TaskSelectionForm
from dialogues.library.models import Split
from dialogues.library.selectors import task_filter_choices
from dialogues.llm.backends import backend_probe
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get, prompt_sets
from dialogues.runs.models import Dialogue, Run
from dialogues.runs.selectors import dialogue_get_or_404
from evaluation import benchmark, judges, report, sdiv, sotopia_evaluator, trajectories
from evaluation.forms import BenchmarkForm
from evaluation.jobs import METRIC_LABELS, METRICS, JobError, job_cancel, job_create, job_enqueue
from evaluation.judges import EPISODE, RELEVANCE
from evaluation.models import EpisodeEvaluator, EpisodeScore, EvaluationJob, JobScope
from evaluation.plots import sif_figure, sorted_scores_chart
from evaluation.services import dialogue_diversity
from omega_web.roles import Capability, capability_map, requires


def _metrics(request: HttpRequest) -> list[str]:
    return [m for m in request.POST.getlist("metrics") if m in METRICS]


def _start(request: HttpRequest, **kwargs: Any) -> EvaluationJob | None:
    evaluator = request.POST.get("evaluator") or EpisodeEvaluator.OMEGA
    try:
        kwargs["prompt_set"] = prompt_set_get(request.POST.get("prompt_set", ""))  # "": the built-in set
        job = job_create(metrics=_metrics(request), user=request.user, evaluator=evaluator, **kwargs)
    except (JobError, ValueError, PromptSetMissing) as exc:
        messages.error(request, f"Not started: {exc}")
        return None
    job_enqueue(job)
    return job


def _jobs_for(**scope: Any) -> list[EvaluationJob]:
    return list(EvaluationJob.objects.filter(**scope)[:5])


def _form_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "metric_choices": [(m, METRIC_LABELS[m]) for m in METRICS],
        "evaluator_choices": EpisodeEvaluator.choices,
        "sotopia_unavailable": sotopia_evaluator.unavailable_reason(),
        "prompt_set_choices": [(s.name, s.label) for s in prompt_sets()],
        "can": capability_map(request.user),
    }


# --- one dialogue ----------------------------------------------------------------------------------------


def _dialogue_panel(request: HttpRequest, dialogue: Dialogue, *, csv_speaker: int | None = None) -> HttpResponse:

    ids = [dialogue.pk]
    srel, srel_versions = report.pick_version(RELEVANCE, ids, request.GET.get("srel"))
    episode, episode_versions = report.pick_version(EPISODE, ids, request.GET.get("sotopia"))
    sif = report.agent_sif(ids, srel)
    relevance = report.dialogue_relevance(dialogue.pk, srel)
    turns = list(dialogue.turns.order_by("index"))
    data = next(iter(read_dialogues([dialogue.pk], annotations=False)), None)
    texts = {t.pk: t.text for t in data.turns} if data else {}  # as evaluated: a curator's correction applied
    episode_rows = {r.speaker: r for r in report.episode_rows(ids, episode)}
    agents, srel_query = [], urlencode({"srel": srel.key}) if srel else ""
    for diversity in dialogue_diversity(dialogue.pk, data):
        speaker = diversity.speaker
        rel_rows = [(t, relevance.get(t.pk)) for t in turns if t.speaker == speaker]
        figure = sif_figure(diversity, rel_rows, texts) if (diversity.figure or relevance) else None
        agents.append(
            {
                "diversity": diversity,
                "sif": sif[(dialogue.pk, speaker)],
                "relevance": rel_rows,
                "episode": episode_rows.get(speaker),
                "figure": json.dumps(figure) if figure else "",
                "plot_id": f"sif-plot-{dialogue.pk}-agent-{speaker + 1}",
                "csv": reverse("dialogue_sif_csv", args=[dialogue.pk, speaker + 1]) + (srel_query and f"?{srel_query}"),
            }
        )
    jobs = _jobs_for(dialogue=dialogue)
    context = {
        "dialogue": dialogue,
        "panel_target": f"#sif-{dialogue.pk}",
        "agents": agents,
        "alpha": sdiv.ALPHA,
        "srel": srel,
        "srel_versions": srel_versions,
        "episode": episode,
        "episode_versions": episode_versions,
        "dimensions": judges.DIMENSIONS,
        "jobs": jobs,
        "computing": any(j.active for j in jobs),
        **_form_context(request),
    }
    if csv_speaker is not None:  # nothing computed or judged yet: a CSV with its header only, like no figure
        drawn = next((a["figure"] for a in agents if a["diversity"].speaker == csv_speaker), "")
        figure = json.loads(drawn) if drawn else {}
        return figure_csv_response(figure, f"dialogue-{dialogue.pk}-agent-{csv_speaker + 1}-sif")
    return render(request, "evaluation/_sif_panel.html", context)


@requires(Capability.VIEW)
def dialogue_sif(request: HttpRequest, pk: int) -> HttpResponse:
    return _dialogue_panel(request, dialogue_get_or_404(pk))


@requires(Capability.VIEW)
def dialogue_sif_csv(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Agent `number`'s (1 or 2) S-IF figure (heatmap and relevance strip) as CSV, judge as on the panel (?srel=)."""
    if number not in (1, 2):
        raise Http404("A dialogue has agents 1 and 2")
    return _dialogue_panel(request, dialogue_get_or_404(pk), csv_speaker=number - 1)


@requires(Capability.RUN)
@require_POST
def dialogue_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    dialogue = dialogue_get_or_404(pk)
    _start(request, scope=JobScope.DIALOGUE, dialogue_ids=[dialogue.pk], dialogue=dialogue)
    if request.htmx:
        return _dialogue_panel(request, dialogue)
    return redirect(reverse("dialogue_detail", args=[dialogue.pk]) + "#evaluation")


# --- a run -----------------------------------------------------------------------------------------------


@requires(Capability.VIEW)
def run_sif(request: HttpRequest, pk: int) -> HttpResponse:
    """The summary on the run's page: Table 3's S-IF and the SOTOPIA-EVAL line, linking to the full report."""
    run = get_object_or_404(Run, pk=pk)
    ids, which = report.run_dialogue_ids(run)
    srel, _ = report.pick_version(RELEVANCE, ids, None)
    episode, _ = report.pick_version(EPISODE, ids, None)
    jobs = _jobs_for(run=run)
    context = {
        "run": run,
        "which": which,
        "count": len(ids),
        "sif": report.sif_table(ids, srel, episode),
        "srel": srel,
        "episode": episode,
        "episode_table": report.episode_table(ids, episode),
        "labels": report.LABELS,
        "jobs": jobs,
        "computing": any(j.active for j in jobs),
        **_form_context(request),
    }
    return render(request, "evaluation/_run_sif_panel.html", context)


def _report_data(run: Run, request: HttpRequest) -> dict[str, Any]:
    which = request.GET.get("dialogues", "auto")
    ids, which = report.run_dialogue_ids(run, which if which in {"auto", "kept", "finished"} else "auto")
    srel, srel_versions = report.pick_version(RELEVANCE, ids, request.GET.get("srel"))
    episode, episode_versions = report.pick_version(EPISODE, ids, request.GET.get("sotopia"))
    return {
        "ids": ids,
        "which": which,
        "srel": srel,
        "srel_versions": srel_versions,
        "episode": episode,
        "episode_versions": episode_versions,
    }


USABLE_COLUMNS = ["records", "usable_records", "usable_ratio", "finished_attempts", "kept_attempts", "dialogue_ratio",
                  "late_agreements", "late_only"]  # fmt: skip


def _usable_row(u: report.Usable) -> dict[str, Any]:
    return {
        "records": u.records,
        "usable_records": u.usable_records,
        "usable_ratio": u.ratio,
        "finished_attempts": u.dialogues,
        "kept_attempts": u.kept,
        "dialogue_ratio": u.dialogue_ratio,
        "late_agreements": u.late_agreements,
        "late_only": u.late_only,
    }


EPISODE_VERSION_COLUMNS = ("evaluator", "judge_model", "prompt_version")


def _tables(run: Run, data: dict[str, Any]) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """Every table and figure of the report as CSV columns and rows, by name."""

    ids = data["ids"]
    sif = report.sif_table(ids, data["srel"], data["episode"])
    episode = report.episode_table(ids, data["episode"])
    judged = data["episode"]  # whose SOTOPIA-EVAL the table is: every row says so
    values = (judged.evaluator, judged.model, judged.version) if judged else ("", "", "")
    version = dict(zip(EPISODE_VERSION_COLUMNS, values, strict=True))
    kept_only = data["which"] == "kept"
    tables = {
        "sif": (
            ["agent", "s_div", "s_div_n", "s_rel", "s_rel_n", "s_sif", "s_sif_n", "s_rel_pooled"],
            [{"agent": r["label"], **{k: v for k, v in r.items() if k != "label"}} for r in sif.rows],
        ),
        "sotopia": (
            [*EPISODE_VERSION_COLUMNS, "subset", "tasks", "dimension", "mean", "ci95_half_width", "low", "high"],
            [
                {
                    **version,
                    "subset": row["subset"],
                    "tasks": row["n"],
                    "dimension": label,
                    "mean": row[label].mean,
                    "ci95_half_width": row[label].half_width,
                    "low": row[label].low,
                    "high": row[label].high,
                }
                for row in episode.rows
                for label in report.LABELS
            ],
        ),
        "dialogues": (["dialogue", "agent", "s_div", "s_rel", "s_sif", "actions", "relevance_missing"], []),
        "usable": (USABLE_COLUMNS, [_usable_row(report.usable(run))]),
    }
    for (pk, speaker), agent in sorted(report.agent_sif(ids, data["srel"]).items()):
        tables["dialogues"][1].append(
            {
                "dialogue": pk,
                "agent": speaker + 1,
                "s_div": agent.s_div,
                "s_rel": agent.s_rel,
                "s_sif": agent.s_sif,
                "actions": agent.actions,
                "relevance_missing": agent.missing,
            }
        )
    for name, build in (
        ("goal-by-turn", trajectories.goal_by_turn),
        ("ratings-by-strategy", trajectories.ratings_by_strategy),
        ("strategy-use", trajectories.strategy_use),
    ):
        result = build(run.pk, kept_only=kept_only)
        tables[name] = (result.columns, result.rows)
    return tables


@requires(Capability.VIEW)
def run_report(request: HttpRequest, pk: int) -> HttpResponse:

    run = get_object_or_404(Run, pk=pk)
    data = _report_data(run, request)
    ids = data["ids"]
    sif = report.sif_table(ids, data["srel"], data["episode"])
    kept_only = data["which"] == "kept"
    figures = {}
    for metric, label in (("s_div", "S_div"), ("s_rel", "S_rel")):
        if sif.points[metric]:
            figures[metric] = json.dumps(sorted_scores_chart(sif.points[metric], metric=label, goal=sif.goal_label))
    for name, build in (
        ("goal_by_turn", trajectories.goal_by_turn),
        ("ratings_by_strategy", trajectories.ratings_by_strategy),
        ("strategy_use", trajectories.strategy_use),
    ):
        result = build(run.pk, kept_only=kept_only)
        figures[name] = "" if result.empty else json.dumps(result.figure)
    jobs = _jobs_for(run=run)
    context = {
        "run": run,
        **data,
        "count": len(ids),
        "usable": report.usable(run),
        "sif": sif,
        "episode_table": report.episode_table(ids, data["episode"]),
        "labels": report.LABELS,
        "figures": figures,
        "jobs": jobs,
        "computing": any(j.active for j in jobs),
        "query": request.GET.urlencode(),
        "other_runs": Run.objects.exclude(pk=run.pk).order_by("-created_at")[:50],
        **_form_context(request),
    }
    return render(request, "evaluation/report.html", context)


@requires(Capability.VIEW)
def run_report_csv(request: HttpRequest, pk: int, table: str) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    tables = _tables(run, _report_data(run, request))
    if table not in tables:
        raise Http404(f"no table {table!r}: one of {', '.join(tables)}")
    columns, rows = tables[table]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-{table}.csv"'
    writer = csv.DictWriter(response, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return response


@requires(Capability.RUN)
@require_POST
def run_evaluate(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    which = request.POST.get("dialogues", "auto")
    ids, _ = report.run_dialogue_ids(run, which if which in {"auto", "kept", "finished"} else "auto")
    if _start(request, scope=JobScope.RUN, dialogue_ids=ids, run=run):
        messages.success(request, "Evaluation started on a worker: the report updates when it is done.")
    return redirect("run_report", pk=run.pk)


# --- a corpus --------------------------------------------------------------------------------------------


@requires(Capability.RUN)
@require_POST
def corpus_evaluate(request: HttpRequest, pk: int) -> HttpResponse:

    corpus = get_object_or_404(Corpus, pk=pk)
    ids = selected(CorpusFilters.from_json(corpus.filters), corpus.includes, corpus.excludes).values_list(
        "pk", flat=True
    )
    job = _start(request, scope=JobScope.CORPUS, dialogue_ids=list(ids), corpus=corpus)
    return redirect("evaluation_detail", pk=job.pk) if job else redirect("corpus_detail", pk=corpus.pk)


# --- jobs ------------------------------------------------------------------------------------------------


def _job_context(job: EvaluationJob) -> dict[str, Any]:
    done, total = job.progress.get("done", 0), job.progress.get("total", 0)
    return {"job": job, "percent": round(100 * done / total) if total else 0}


@requires(Capability.VIEW)
def evaluation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(EvaluationJob, pk=pk)
    context = _job_context(job)
    if request.htmx and request.htmx.target == f"evaluation-job-{job.pk}":  # the card, polling itself
        response = render(request, "evaluation/_job.html", context)
        if not job.active:
            # the card polls only while its job is active, so this is said once: the pages that show the results
            # (the run's report, the job's page) draw them again, and their button is "Evaluate" again
            response["HX-Trigger"] = "evaluation-ended"
        return response
    ids = list(job.dialogue_ids)
    srel, _ = report.pick_version(RELEVANCE, ids, report.version_key(job.judge_model, job.versions.get(RELEVANCE, "")))
    episode, _ = report.pick_version(
        EPISODE, ids, report.version_key(job.judge_model, job.versions.get(EPISODE, ""), job.episode_evaluator)
    )
    context.update(
        sif=report.sif_table(ids, srel, episode),
        episode_table=report.episode_table(ids, episode),
        srel=srel,
        episode=episode,
        labels=report.LABELS,
        can=capability_map(request.user),
    )
    return render(request, "evaluation/job.html", context)


@requires(Capability.RUN)
@require_POST
def evaluation_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(EvaluationJob, pk=pk)
    if job_cancel(job):
        messages.info(request, "Evaluation cancelled: results computed so far are kept.")
    return redirect("evaluation_detail", pk=job.pk)


@requires(Capability.VIEW)
def evaluation_list(request: HttpRequest) -> HttpResponse:
    jobs = EvaluationJob.objects.select_related("run", "dialogue", "corpus", "created_by")[:100]
    return render(request, "evaluation/list.html", {"jobs": jobs})


# --- runs compared ---------------------------------------------------------------------------------------


@requires(Capability.VIEW)
def evaluation_compare(request: HttpRequest) -> HttpResponse:
    ids = [int(v) for v in request.GET.getlist("run") if v.isdigit()]
    runs = {r.pk: r for r in Run.objects.filter(pk__in=ids)}
    chosen = [runs[i] for i in dict.fromkeys(ids) if i in runs]
    comparison = report.compare_runs(chosen) if len(chosen) >= 2 else None
    prompt_set = request.GET.get("prompt_set", "")
    context = {
        "comparison": comparison,
        "chosen": chosen,
        **report.compare_choices(chosen, prompt_set),
        "episode_failed": EpisodeScore.objects.filter(dialogue__run__in=chosen, overall__isnull=True).count(),
    }
    return render(request, "evaluation/compare.html", context)


# --- evaluation runs (benchmarks) ------------------------------------------------------------------------


def _uploaded(upload: Any, directory: Path) -> Path | None:
    """An uploaded order or partition file on disk under its own name (the parsers name it in their errors)."""
    if not upload:
        return None
    path = directory / Path(upload.name).name
    path.write_bytes(upload.read())
    return path


@requires(Capability.RUN)
def run_benchmark_new(request: HttpRequest) -> HttpResponse:

    data = request.POST or None
    selection = TaskSelectionForm(
        data or request.GET or None, choices=task_filter_choices(), initial={"split": Split.EVAL}
    )
    form = BenchmarkForm(data, request.FILES or None)
    if request.method == "POST" and form.is_valid() and selection.is_valid():
        tasks = selection.tasks()
        problem = None if tasks else "No task matches the selection."
        found: list[dict] = []
        for backend in filter(None, (form.agent, form.reference)):
            probe = backend_probe(backend) if not problem else None
            problem = problem or (probe.problem if probe else None)
            found += probe.as_json() if probe else []
        if not problem:
            d = form.cleaned_data
            try:
                with tempfile.TemporaryDirectory(prefix="omega-order-") as tmp:
                    order = benchmark.resolve_order(
                        order_file=_uploaded(d["order_file"], Path(tmp)),
                        partition_file=_uploaded(d["partition_file"], Path(tmp)),
                    )
                setting_label = "self-play" if d["setting"] == "self_play" else f"vs {form.reference.model}"
                run = benchmark.benchmark_launch(
                    name=d["name"] or f"{form.agent.model} · {setting_label} · {len(tasks)} tasks",
                    setting=d["setting"],
                    agent=form.agent,
                    reference=form.reference,
                    tasks=tasks,
                    order=order,
                    max_turns=d["max_turns"],
                    seed=d["seed"],
                    user=request.user,
                    server_profiles=found,
                    prompt_set=prompt_set_get(d.get("prompt_set") or ""),
                )
                return redirect("run_detail", pk=run.pk)
            except benchmark.BenchmarkError as exc:
                problem = str(exc)
        form.add_error(None, problem)
    context = {"form": form, "selection": selection}
    refused = bool(form.errors or (request.method == "POST" and selection.errors))  # a sample out of range, too
    return render(request, "evaluation/benchmark_new.html", context, status=400 if refused else 200)


@requires(Capability.VIEW)
def run_manifest(request: HttpRequest, pk: int) -> HttpResponse:

    run = get_object_or_404(Run, pk=pk, kind="evaluation")
    response = HttpResponse(json.dumps(benchmark.manifest(run), indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="benchmark-run-{run.pk}-manifest.json"'
    return response


@requires(Capability.VIEW)
def evaluation_leaderboard(request: HttpRequest) -> HttpResponse:

    return render(request, "evaluation/leaderboard.html", {"rows": benchmark.leaderboard()})


@requires(Capability.RUN)
@require_POST
def benchmark_repeat(request: HttpRequest, pk: int) -> HttpResponse:
    """A new evaluation run from this one's manifest: the same models, endpoints, seed, tasks and sides."""

    run = get_object_or_404(Run, pk=pk, kind="evaluation")
    try:
        again = benchmark.benchmark_relaunch(run, user=request.user)
    except benchmark.BenchmarkError as exc:
        messages.error(request, f"Not repeated: {exc}")
        return redirect("run_detail", pk=run.pk)
    messages.success(request, f"Run #{again.pk} repeats run #{run.pk} from its manifest.")
    return redirect("run_detail", pk=again.pk)
