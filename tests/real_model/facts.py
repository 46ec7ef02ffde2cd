"""What a real-model run stored, as JSON, read in the app's own process:
`manage.py shell -c "from tests.real_model.facts import dump; dump([RUN_ID, ...])"`.

The tests never open the app's database themselves (it is the served app's, in its own var/ directory).
"""

from __future__ import annotations

import json
import sys


def _row(obj) -> dict:
    """A stored row as it is: every column by its own name (a foreign key as its id)."""
    return {
        f.attname.removesuffix("_id") if f.is_relation else f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
    }


def dump(run_ids: list[int]) -> None:
    from dialogues.runs.models import Dialogue, LLMCall, Run, StepRating, Turn

    runs = []
    for run in Run.objects.filter(pk__in=run_ids).order_by("pk"):
        dialogues = Dialogue.objects.filter(run=run).select_related("task").order_by("pk")
        runs.append(
            {
                "id": run.pk,
                "variant": run.variant,
                "status": run.status,
                "status_reason": run.status_reason,
                "model": run.model,
                "endpoints": run.endpoints,
                "server_profiles": run.server_profiles,
                "config": run.config,
                "dialogues": [
                    {
                        "id": d.pk,
                        "task": d.task.external_id,
                        "hard": d.task.hard,
                        "status": d.status,
                        "end_reason": d.end_reason,
                        "failure_reason": d.failure_reason,
                        "turns_count": d.turns_count,
                        "nsi_used": d.nsi_used,
                        "kept": d.kept,
                        "filter_passed": d.filter_passed,
                        "calls_count": d.calls_count,
                    }
                    for d in dialogues
                ],
                "turns": [_row(t) for t in Turn.objects.filter(dialogue__run=run).order_by("dialogue_id", "index")],
                "ratings": [
                    {
                        "dialogue": r.turn.dialogue_id,
                        "turn": r.turn.index,
                        "samples": r.samples,
                        "rejected": r.rejected,
                        "requested": r.requested,
                        "returned": r.returned,
                        "valid": r.valid,
                        "goal_c": r.goal_c,
                        "goal_p": r.goal_p,
                        "closing": r.closing,
                    }
                    for r in StepRating.objects.filter(turn__dialogue__run=run).select_related("turn")
                ],
                "calls": [_row(c) for c in LLMCall.objects.filter(dialogue__run=run).order_by("pk")],
            }
        )
    sys.stdout.write("\n" + json.dumps(runs, default=str) + "\n")  # one line, the last


def dump_evaluation(dialogue_ids: list[int]) -> None:
    """The last evaluation job and the scores it left on these dialogues."""
    from evaluation.models import DiversityScore, EpisodeScore, EvaluationJob, RelevanceScore

    job = EvaluationJob.objects.order_by("-pk").first()
    dims = ("bel", "rel", "kno", "sec", "soc", "fin", "goal")
    facts = {
        "job": {"id": job.pk, "status": job.status, "error": job.error, "counts": job.counts, "problems": job.problems},
        "diversity": [
            {"dialogue": s.dialogue_id, "speaker": s.speaker, "actions": s.actions, "s_div": s.s_div}
            for s in DiversityScore.objects.filter(dialogue_id__in=dialogue_ids)
        ],
        "relevance": [
            {"turn": s.turn_id, "score": s.score, "samples": s.samples, "rejected": s.rejected, "problem": s.problem}
            for s in RelevanceScore.objects.filter(turn__dialogue_id__in=dialogue_ids)
        ],
        "episode": [
            {
                "dialogue": s.dialogue_id,
                "speaker": s.speaker,
                "scores": {d: getattr(s, d) for d in dims},
                "samples": s.samples,
                "requested": s.requested,
                "rejected": s.rejected,
                "problem": s.problem,
            }
            for s in EpisodeScore.objects.filter(dialogue_id__in=dialogue_ids)
        ],
    }
    sys.stdout.write("\n" + json.dumps(facts) + "\n")
