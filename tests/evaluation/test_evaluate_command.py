"""`manage.py evaluate`: every metric from the command line with the simulated judge (labelled as such), the
tables it prints, a second evaluation that reuses everything, and clear errors."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from dialogues.library.models import Task
from evaluation.models import EpisodeScore, EvaluationJob, RelevanceScore
from tests.factories import simulated_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def evaluate(*args: str) -> str:
    out = io.StringIO()
    call_command("evaluate", *args, stdout=out, verbosity=0)
    return out.getvalue()


def test_every_metric_from_the_command_line(demo_tasks):
    run = simulated_run(Task.objects.all()[:3], name="cli")
    out = evaluate("--run", str(run.pk), "--metrics", "sdiv,srel,sotopia", "--simulated")
    assert "judge simulated-expert" in out and "done in" in out
    assert "S-IF ×100 over 3 dialogues" in out and "SOTOPIA-EVAL by omega-web's prompt, self-play averaged" in out
    assert re.search(r"^\s+all\s+3\s+\d", out, flags=re.M)  # three tasks, each dimension a number
    # the usable ratio: every action of a finished attempt is a record (no person typed any here)
    finished = run.dialogues.filter(status="finished")
    records = sum(d.turns.count() for d in finished)
    kept = sum(d.turns.count() for d in finished.filter(kept=True))
    assert f"Usable ratio (paper Table 4, training records): {100 * kept / records:.1f}% = {kept} records" in out
    assert f"in kept attempts / {records} in all finished attempts" in out
    job = EvaluationJob.objects.get()
    assert job.config["max_tokens"] == 2048  # the judges' default
    assert job.counts["srel"]["judged"] == RelevanceScore.objects.count() > 0
    assert EpisodeScore.objects.filter(overall__isnull=False).count() == 6
    again = evaluate("--run", str(run.pk), "--metrics", "srel,sotopia", "--simulated")
    assert "judged 0, reused" in again and "failed 0" in again
    evaluate("--run", str(run.pk), "--metrics", "srel", "--simulated", "--max-tokens", "300")
    assert EvaluationJob.objects.latest("id").config["max_tokens"] == 300  # what the judges are asked with


def test_clear_errors(demo_tasks):
    with pytest.raises(CommandError, match="unknown metric"):
        evaluate("--run", "1", "--metrics", "bleu")
    with pytest.raises(CommandError, match="exactly one of"):
        evaluate("--metrics", "sdiv")
    with pytest.raises(CommandError, match="no run #999"):
        evaluate("--run", "999")
    with pytest.raises(CommandError, match="invalid judge configuration"):
        run = simulated_run([Task.objects.first()], name="x", config={"judge_samples": 5})
        evaluate("--run", str(run.pk), "--metrics", "srel", "--episode-samples", "0")
    with pytest.raises(CommandError, match="max_tokens at least 1"):
        evaluate("--run", str(run.pk), "--metrics", "srel", "--max-tokens", "0")
