"""What evaluation adds to dialogues' pages, registered in EvaluationConfig.ready() (dialogues never imports
evaluation): the corpus page's evaluate form and its latest evaluations."""

from __future__ import annotations

from typing import Any

from dialogues.corpora.models import Corpus
from evaluation import sotopia_evaluator
from evaluation.jobs import METRIC_LABELS, METRICS
from evaluation.models import EpisodeEvaluator, EvaluationJob


def corpus_evaluations(*, corpus: Corpus, **_: Any) -> dict[str, Any]:
    """The metrics and SOTOPIA-EVAL evaluators the corpus page's evaluate form offers and the corpus's five latest
    evaluations."""
    return {
        "metric_choices": [(m, METRIC_LABELS[m]) for m in METRICS],
        "evaluator_choices": EpisodeEvaluator.choices,
        "sotopia_unavailable": sotopia_evaluator.unavailable_reason(),
        "evaluations": EvaluationJob.objects.filter(corpus=corpus)[:5],
    }
