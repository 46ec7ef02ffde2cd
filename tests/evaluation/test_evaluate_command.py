"""`manage.py evaluate`: every metric from the command line with the simulated judge (labelled as such), the
tables it prints, a second evaluation that reuses everything, and clear errors."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from dialogues.engine.config import RunConfig
from dialogues.library.models import Task
from dialogues.llm.backends import configured_backend
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.lifecycle import run_create
from evaluation.models import EpisodeScore, EvaluationJob, RelevanceScore

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def evaluate(*args: str) -> str:
    out = io.StringIO()
    call_command("evaluate", *args, stdout=out, verbosity=0)
    return out.getvalue()


def test_every_metric_from_the_command_line(demo_tasks):
    run = run_create(created_by=None, name="cli", config=RunConfig(judge_samples=3),
                     tasks=list(Task.objects.all()[:3]), backend=configured_backend(simulated=True))  # fmt: skip
    run_coroutine(lambda llms: run_to_end(run.pk, llms))
    out = evaluate("--run", str(run.pk), "--metrics", "sdiv,srel,sotopia", "--simulated")
    assert "judge simulated-expert" in out and "done in" in out
    assert "S-IF ×100 over 3 dialogues" in out and "SOTOPIA-EVAL, self-play averaged" in out
    assert re.search(r"^\s+all\s+3\s+\d", out, flags=re.M)  # three tasks, each dimension a number
    job = EvaluationJob.objects.get()
    assert job.counts["srel"]["judged"] == RelevanceScore.objects.count() > 0
    assert EpisodeScore.objects.filter(overall__isnull=False).count() == 6
    again = evaluate("--run", str(run.pk), "--metrics", "srel,sotopia", "--simulated")
    assert "judged 0, reused" in again and "failed 0" in again


def test_clear_errors(demo_tasks):
    with pytest.raises(CommandError, match="unknown metric"):
        evaluate("--run", "1", "--metrics", "bleu")
    with pytest.raises(CommandError, match="exactly one of"):
        evaluate("--metrics", "sdiv")
    with pytest.raises(CommandError, match="no run #999"):
        evaluate("--run", "999")
    with pytest.raises(CommandError, match="invalid judge configuration"):
        run = run_create(created_by=None, name="x", config=RunConfig(), tasks=[Task.objects.first()],
                         backend=configured_backend(simulated=True))  # fmt: skip
        run_coroutine(lambda llms: run_to_end(run.pk, llms))
        evaluate("--run", str(run.pk), "--metrics", "srel", "--episode-samples", "0")
