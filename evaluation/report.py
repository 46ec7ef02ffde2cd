"""Reads of evaluation results for a set of dialogues (a run, a corpus, one dialogue), prepared for pages, CSV and
the CLI: S-IF in the layout of the paper's Table 3, SOTOPIA-EVAL with 95% t-intervals over tasks (all and hard),
judge versions present, a run's usable ratio as Table 4 counts it (training records) with the agreements the turn
limit cut off, and runs compared in Table 4's layout with paired tests over shared tasks.

SOTOPIA-EVAL scores from different evaluators (omega-web's prompt, sotopia's evaluator: ADR 0025) are never averaged
together: a version is one evaluator's, a mean over rows of two evaluators is refused (`MixedEvaluators`), and runs
are compared on one evaluator's scores.

S_rel of an agent in a dialogue is sigmoid(mean of its actions' relevance scores) and is defined only when every
action of the agent was scored by that judge version (a partly judged agent shows how many are missing); S_sif is
(S_div + S_rel) / 2. Run level: the mean over dialogues of each (METHOD.md §3), all shown ×100.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from django.db.models import Count, Max, Q

from dialogues.corpora.selection import record_turns
from dialogues.runs.models import Dialogue, DialogueStatus, Run, Turn
from dialogues.runs.selectors import late_agreements
from evaluation import judges
from evaluation.judges import DIMENSIONS, EPISODE, RELEVANCE
from evaluation.models import DiversityScore, EpisodeEvaluator, EpisodeScore, RelevanceScore
from evaluation.stats import paired, t_interval

SUBSETS = ("all", "hard")


class MixedEvaluators(ValueError):
    """SOTOPIA-EVAL scores of two evaluators were about to be averaged together."""


def version_key(model: str, version: str, evaluator: str = EpisodeEvaluator.OMEGA) -> str:
    """How pages and the CLI name a judge version: model@version, prefixed by the evaluator when it is not ours."""
    key = f"{model}@{version}"
    return key if evaluator == EpisodeEvaluator.OMEGA else f"{evaluator}:{key}"


@dataclass(frozen=True)
class JudgeVersion:
    model: str
    version: str
    results: int
    evaluator: str = EpisodeEvaluator.OMEGA  # SOTOPIA-EVAL: whose prompt and answer schema

    @property
    def key(self) -> str:
        return version_key(self.model, self.version, self.evaluator)

    @property
    def evaluator_label(self) -> str:
        return EpisodeEvaluator(self.evaluator).label


def interval_text(interval: Any, sep: str = " ± ") -> str:
    """mean ± 95% half width as tables print it; the mean alone when n < 2; — when there is nothing."""
    if interval is None or interval.mean is None:
        return "—"
    if interval.half_width is None:
        return f"{interval.mean:.2f}"
    return f"{interval.mean:.2f}{sep}{interval.half_width:.2f}"


def judge_versions(metric: str, ids: list[int], evaluator: str | None = None) -> list[JudgeVersion]:
    """The (judge model, prompt version) pairs with results for these dialogues, the most recent first; for
    SOTOPIA-EVAL, with their evaluator (only `evaluator`'s if given)."""
    if metric == RELEVANCE:
        rows = (
            RelevanceScore.objects.filter(dialogue_id__in=ids)
            .values("judge_model", "prompt_version")
            .annotate(n=Count("id"), latest=Max("computed_at"))
            .order_by("-latest")
        )
        return [JudgeVersion(r["judge_model"], r["prompt_version"], r["n"]) for r in rows]
    scores = EpisodeScore.objects.filter(dialogue_id__in=ids)
    if evaluator is not None:
        scores = scores.filter(evaluator=evaluator)
    rows = (
        scores.values("evaluator", "judge_model", "prompt_version")
        .annotate(n=Count("id"), latest=Max("computed_at"))
        .order_by("-latest")
    )
    return [JudgeVersion(r["judge_model"], r["prompt_version"], r["n"], r["evaluator"]) for r in rows]


def pick_version(
    metric: str, ids: list[int], wanted: str | None, evaluator: str | None = None
) -> tuple[JudgeVersion | None, list[JudgeVersion]]:
    """The version named `wanted` (its key), else the most recent (of `evaluator` if given), and all of them."""
    versions = judge_versions(metric, ids, evaluator)
    chosen = next((v for v in versions if v.key == wanted), versions[0] if versions else None)
    return chosen, versions


# --- S-IF ------------------------------------------------------------------------------------------------


@dataclass
class AgentSif:
    dialogue_id: int
    speaker: int
    s_div: float | None = None  # 0..1
    div_actions: int = 0
    relevance: list[float] = field(default_factory=list)  # scored actions
    actions: int = 0  # all actions of the agent (each should be judged)

    @property
    def s_rel(self) -> float | None:
        if not self.actions or len(self.relevance) < self.actions:
            return None
        return judges.sigmoid(fmean(self.relevance))

    @property
    def missing(self) -> int:
        return self.actions - len(self.relevance)

    @property
    def s_sif(self) -> float | None:
        if self.s_div is None or self.s_rel is None:
            return None
        return (self.s_div + self.s_rel) / 2


def agent_sif(ids: list[int], srel: JudgeVersion | None) -> dict[tuple[int, int], AgentSif]:
    """S_div, S_rel and S_sif of every agent of these dialogues (three queries)."""
    out = {(pk, s): AgentSif(pk, s) for pk in ids for s in (0, 1)}
    for row in Turn.objects.filter(dialogue_id__in=ids).values("dialogue_id", "speaker").annotate(n=Count("id")):
        out[(row["dialogue_id"], row["speaker"])].actions = row["n"]
    for dialogue_id, speaker, value, n in DiversityScore.objects.filter(dialogue_id__in=ids).values_list(
        "dialogue_id", "speaker", "s_div", "actions"
    ):
        out[(dialogue_id, speaker)].s_div = value
        out[(dialogue_id, speaker)].div_actions = n
    if srel is not None:
        for dialogue_id, speaker, score in RelevanceScore.objects.filter(
            dialogue_id__in=ids, judge_model=srel.model, prompt_version=srel.version, score__isnull=False
        ).values_list("dialogue_id", "speaker", "score"):
            out[(dialogue_id, speaker)].relevance.append(score)
    return out


def scored_sides(ids: list[int]) -> dict[int, tuple[int, ...]]:
    """The sides whose scores count per dialogue: both in self-play, only the agent's against a reference model
    (an evaluation run's `agent_side`)."""
    return {
        pk: (0, 1) if side is None else (side,)
        for pk, side in Dialogue.objects.filter(pk__in=ids).values_list("pk", "agent_side")
    }


def _mean100(values: list[float | None]) -> tuple[float | None, int]:
    defined = [100 * v for v in values if v is not None]
    return (fmean(defined) if defined else None), len(defined)


@dataclass
class SifTable:
    rows: list[dict[str, Any]]  # agent 1, agent 2, average: s_div, s_rel, s_sif (×100) with counts; s_rel_pooled
    average_turns: float | None
    dialogues: int
    points: dict[str, list[tuple[int, float, float | None]]]  # metric -> (dialogue, score 0..1, goal 0..10) sorted
    goal_label: str  # what the points' goal is: SOTOPIA-EVAL GOAL when judged, else the expert's final goal_c


def sif_table(ids: list[int], srel: JudgeVersion | None, episode: JudgeVersion | None = None) -> SifTable:
    """Table 3 and the points of Fig. 3 a–d. The points' goal is SOTOPIA-EVAL's GOAL (both agents' mean) when
    `episode` has results, the expert's final goal_c otherwise (the label says which)."""
    agents = agent_sif(ids, srel)
    goals = {pk: fmean(v) for pk, v in _episode_goals(ids, episode).items()}
    goal_label = "GOAL (SOTOPIA-EVAL)"
    if not goals:
        goals = {pk: g for pk, g in Dialogue.objects.filter(pk__in=ids).values_list("pk", "final_goal_c")}
        goal_label = "final goal_c"
    turns = list(Dialogue.objects.filter(pk__in=ids).values_list("turns_count", flat=True))
    scored = scored_sides(ids)
    reference = any(len(sides) == 1 for sides in scored.values())
    rows = []
    scored_label = "agent under test" if reference else "average"
    for label, speakers in (("agent 1", (0,)), ("agent 2", (1,)), (scored_label, None)):
        row: dict[str, Any] = {"label": label}
        for metric in ("s_div", "s_rel", "s_sif"):
            if speakers is not None:
                values = [getattr(agents[(pk, speakers[0])], metric) for pk in ids]
            else:  # per dialogue: the mean of the scored sides where defined
                values = []
                for pk in ids:
                    both = [v for s in scored[pk] if (v := getattr(agents[(pk, s)], metric)) is not None]
                    values.append(fmean(both) if both else None)
            row[metric], row[f"{metric}_n"] = _mean100(values)
        # METHOD.md §3's option: sigmoid of the pooled mean of every scored action of the complete agents
        complete = [agents[(pk, s)] for pk in ids for s in (speakers or scored[pk])]
        pooled = [score for a in complete if a.s_rel is not None for score in a.relevance]
        row["s_rel_pooled"] = 100 * judges.sigmoid(fmean(pooled)) if pooled else None
        rows.append(row)
    points = {}
    for metric in ("s_div", "s_rel"):
        per = []
        for pk in ids:
            both = [v for s in scored[pk] if (v := getattr(agents[(pk, s)], metric)) is not None]
            if both:
                per.append((pk, fmean(both), goals.get(pk)))
        points[metric] = sorted(per, key=lambda p: p[1])
    return SifTable(rows, fmean(turns) if turns else None, len(ids), points, goal_label)


def _episode_goals(ids: list[int], version: JudgeVersion | None) -> dict[int, list[float]]:
    goals: dict[int, list[float]] = defaultdict(list)
    scored = scored_sides(ids)
    for row in episode_rows(ids, version):
        if row.goal is not None and row.speaker in scored[row.dialogue_id]:
            goals[row.dialogue_id].append(row.goal)
    return goals


# --- SOTOPIA-EVAL ----------------------------------------------------------------------------------------

LABELS = [d.label for d in DIMENSIONS] + ["Overall"]


def episode_rows(ids: list[int], version: JudgeVersion | None) -> list[EpisodeScore]:
    if version is None:
        return []
    return list(
        EpisodeScore.objects.filter(
            dialogue_id__in=ids,
            evaluator=version.evaluator,
            judge_model=version.model,
            prompt_version=version.version,
        )
    )


def one_evaluator(rows: list[EpisodeScore]) -> str | None:
    """The evaluator all these scores come from; MixedEvaluators if they come from more than one."""
    evaluators = sorted({row.evaluator for row in rows})
    if len(evaluators) > 1:
        names = " and ".join(EpisodeEvaluator(e).label for e in evaluators)
        raise MixedEvaluators(
            f"SOTOPIA-EVAL scores of {names} cannot be averaged together: their prompts and answer schemas "
            "differ, so their numbers are not on one scale. Report each evaluator's scores separately."
        )
    return evaluators[0] if evaluators else None


def task_scores(
    ids: list[int], version: JudgeVersion | None, rows: list[EpisodeScore] | None = None
) -> dict[int, dict[str, float]]:
    """Per task: each dimension and Overall, self-play averaged (both agents of a dialogue; only the agent under test
    against a reference model), then averaged over the task's evaluated dialogues. Dialogues whose judgement failed
    are left out. `rows`: the version's scores of these dialogues, if already read; rows of two evaluators are
    refused (MixedEvaluators)."""
    rows = episode_rows(ids, version) if rows is None else rows
    one_evaluator(rows)  # refuses a mean over two evaluators' scores
    task_of = dict(Dialogue.objects.filter(pk__in=ids).values_list("pk", "task_id"))
    scored = scored_sides(ids)
    per_dialogue: dict[int, list[EpisodeScore]] = defaultdict(list)
    for row in rows:
        if row.overall is not None and row.speaker in scored[row.dialogue_id]:
            per_dialogue[row.dialogue_id].append(row)
    per_task: dict[int, list[dict[str, float]]] = defaultdict(list)
    for dialogue_id, rows in per_dialogue.items():
        per_task[task_of[dialogue_id]].append({label: fmean(r.value(label) for r in rows) for label in LABELS})
    return {task: {label: fmean(d[label] for d in dicts) for label in LABELS} for task, dicts in per_task.items()}


@dataclass
class EpisodeTable:
    rows: list[dict[str, Any]]  # per subset: n tasks, and per label mean, half width
    failed: int  # agent judgements that failed (reported on the job)


def episode_table(ids: list[int], version: JudgeVersion | None) -> EpisodeTable:
    read = episode_rows(ids, version)
    scores = task_scores(ids, version, read)
    hard = set(Dialogue.objects.filter(pk__in=ids, task__hard=True).values_list("task_id", flat=True))
    rows = []
    for subset in SUBSETS:
        tasks = [t for t in scores if subset == "all" or t in hard]
        row: dict[str, Any] = {"subset": subset, "n": len(tasks)}
        for label in LABELS:
            interval = t_interval([scores[t][label] for t in tasks])
            row[label] = interval
        rows.append(row)
    failed = sum(1 for r in read if r.overall is None)
    return EpisodeTable(rows, failed)


# --- which dialogues of a run --------------------------------------------------------------------------


def run_dialogue_ids(run: Run, which: str = "auto") -> tuple[list[int], str]:
    """The finished dialogues of a run a report covers: `kept` (one per task, what the filter kept), `finished`
    (every attempt), or `auto` — kept when the run kept any."""
    finished = Dialogue.objects.filter(run=run, status=DialogueStatus.FINISHED)
    if which == "auto":
        which = "kept" if finished.filter(kept=True).exists() else "finished"
    chosen = finished.filter(kept=True) if which == "kept" else finished
    return list(chosen.order_by("pk").values_list("pk", flat=True)), which


# --- usable ratio (Table 4) and late agreements ----------------------------------------------------------


@dataclass(frozen=True)
class Usable:
    """What a run's filter kept, counted as the paper's Table 4 counts it, and what the turn limit cut off.

    The usable ratio is training records in kept attempts ÷ training records in all finished attempts (a record
    as the corpus export makes one: an agent action, leave included; not an action a person typed). Beside it the
    dialogue ratio: kept attempts ÷ finished attempts. Late agreements: finished attempts that reached
    confirm_proposal but hit the turn limit before both agents left; `late_only` of them failed the filter only
    for that (their final goal_c reaches the threshold)."""

    records: int
    usable_records: int
    dialogues: int
    kept: int
    late_agreements: int = 0
    late_only: int = 0

    @property
    def ratio(self) -> float | None:
        return self.usable_records / self.records if self.records else None

    @property
    def dialogue_ratio(self) -> float | None:
        return self.kept / self.dialogues if self.dialogues else None

    @property
    def percent(self) -> float | None:
        return None if self.ratio is None else 100 * self.ratio

    @property
    def dialogue_percent(self) -> float | None:
        return None if self.dialogue_ratio is None else 100 * self.dialogue_ratio


def usable(run: Run) -> Usable:
    """The run's usable ratio and late agreements (three queries)."""
    finished = Dialogue.objects.filter(run=run, status=DialogueStatus.FINISHED)
    records = Turn.objects.filter(record_turns(), dialogue__in=finished).aggregate(
        all=Count("id"), kept=Count("id", filter=Q(dialogue__kept=True))
    )
    dialogues = finished.aggregate(all=Count("id"), kept=Count("id", filter=Q(kept=True)))
    late = late_agreements([run.pk])[run.pk]
    return Usable(
        records=records["all"],
        usable_records=records["kept"],
        dialogues=dialogues["all"],
        kept=dialogues["kept"],
        late_agreements=late["late_agreements"],
        late_only=late["late_only"],
    )


def usable_lines(numbers: Usable) -> list[str]:
    """The usable ratio and late agreements as the CLI prints them."""

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}%"

    return [
        f"Usable ratio (paper Table 4, training records): {pct(numbers.ratio)} = {numbers.usable_records} records "
        f"in kept attempts / {numbers.records} in all finished attempts",
        f"Dialogue ratio: {pct(numbers.dialogue_ratio)} = {numbers.kept} kept / {numbers.dialogues} finished attempts",
        f"Late agreements (confirmed, then the turn limit before both left): {numbers.late_agreements}, of which "
        f"{numbers.late_only} failed the filter only for that",
    ]


# --- runs compared (Table 4) ------------------------------------------------------------------------------


@dataclass
class RunSummary:
    run: Run
    usable: Usable  # records and dialogues, all and kept; late agreements
    ids: list[int]  # the dialogues scored (kept, or finished when none kept)
    episode: JudgeVersion | None  # the SOTOPIA-EVAL version GOAL and Overall come from (its evaluator with it)
    goal: float | None  # SOTOPIA-EVAL GOAL, task mean
    overall: float | None
    s_sif: float | None  # ×100
    s_div: float | None
    s_rel: float | None
    per_task: dict[str, dict[int, float]]  # metric -> task -> value, for the paired tests


METRICS_COMPARED = ("GOAL", "Overall", "S_sif", "S_div", "S_rel", "goal_c")


def run_summary(
    run: Run, *, srel: str | None = None, sotopia: str | None = None, evaluator: str | None = None
) -> RunSummary:
    """A run's numbers for Runs compared. `sotopia`: the SOTOPIA-EVAL version's key, else the latest one (of
    `evaluator`'s versions when given: a run without one has no GOAL and Overall)."""
    ids, _ = run_dialogue_ids(run)
    srel_version, _ = pick_version(RELEVANCE, ids, srel)
    episode_version, _ = pick_version(EPISODE, ids, sotopia, evaluator)
    scores = task_scores(ids, episode_version)
    sif = sif_table(ids, srel_version, episode_version)
    agents = agent_sif(ids, srel_version)
    task_of = dict(Dialogue.objects.filter(pk__in=ids).values_list("pk", "task_id"))
    per_task: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    scored = scored_sides(ids)
    for pk in ids:
        for metric, attr in (("S_sif", "s_sif"), ("S_div", "s_div"), ("S_rel", "s_rel")):
            both = [v for s in scored[pk] if (v := getattr(agents[(pk, s)], attr)) is not None]
            if both:
                per_task[metric][task_of[pk]].append(100 * fmean(both))
    for task, goal_c in Dialogue.objects.filter(pk__in=ids).values_list("task_id", "final_goal_c"):
        if goal_c is not None:
            per_task["goal_c"][task].append(goal_c)
    flat = {m: {t: fmean(v) for t, v in per.items()} for m, per in per_task.items()}
    flat["GOAL"] = {t: s["GOAL"] for t, s in scores.items()}
    flat["Overall"] = {t: s["Overall"] for t, s in scores.items()}
    average = sif.rows[2]
    return RunSummary(
        run=run,
        usable=usable(run),
        ids=ids,
        episode=episode_version,
        goal=fmean(flat["GOAL"].values()) if flat["GOAL"] else None,
        overall=fmean(flat["Overall"].values()) if flat["Overall"] else None,
        s_sif=average["s_sif"],
        s_div=average["s_div"],
        s_rel=average["s_rel"],
        per_task={m: flat.get(m, {}) for m in METRICS_COMPARED},
    )


@dataclass
class Comparison:
    summaries: list[RunSummary]
    tests: list[dict[str, Any]]  # per other run and metric: the Paired result against the baseline (first run)
    evaluator: str | None = None  # whose SOTOPIA-EVAL every run's GOAL and Overall come from
    unjudged: list[Run] = field(default_factory=list)  # runs with SOTOPIA-EVAL, but none by that evaluator

    @property
    def evaluator_label(self) -> str:
        return EpisodeEvaluator(self.evaluator).label if self.evaluator else ""


def compare_choices(chosen: list[Run], prompt_set: str = "") -> dict[str, Any]:
    """The runs Runs compared offers (the latest 200, only those of one prompt set when it names one, the chosen ones
    always) and the prompt sets there are to choose from."""
    listed = Run.objects.order_by("-created_at")
    if prompt_set:
        listed = listed.filter(prompt_set_name=prompt_set)
    return {
        "all_runs": [*(r for r in chosen if prompt_set and r.prompt_set_name != prompt_set), *listed[:200]],
        "prompt_set_filter": prompt_set,
        "prompt_set_names": sorted(set(Run.objects.values_list("prompt_set_name", flat=True)) - {""}),
    }


def compare_runs(runs: list[Run]) -> Comparison:
    """Runs side by side, each against the first. GOAL and Overall come from one evaluator for all runs (the one of
    the first run's latest SOTOPIA-EVAL, or of the first run that has any): a run judged only by the other has none
    and is listed as such, never compared across evaluators."""
    evaluator = None
    for run in runs:
        latest, _ = pick_version(EPISODE, run_dialogue_ids(run)[0], None)
        if latest is not None:
            evaluator = latest.evaluator
            break
    summaries = [run_summary(run, evaluator=evaluator) for run in runs]
    unjudged = [s.run for s in summaries if s.episode is None and evaluator and judge_versions(EPISODE, s.ids)]
    tests = []
    base = summaries[0] if summaries else None
    for other in summaries[1:]:
        for metric in METRICS_COMPARED:
            result = paired(other.per_task[metric], base.per_task[metric])
            tests.append({"run": other.run, "baseline": base.run, "metric": metric, "result": result})
    return Comparison(summaries, tests, evaluator, unjudged)


def dialogue_relevance(dialogue_id: int, srel: Any) -> dict[int, RelevanceScore]:
    """One dialogue's relevance scores by the judge version `srel` (None: none), by turn id."""
    if not srel:
        return {}
    scores = RelevanceScore.objects.filter(dialogue_id=dialogue_id, judge_model=srel.model, prompt_version=srel.version)
    return {r.turn_id: r for r in scores}
