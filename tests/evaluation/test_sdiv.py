"""S_div (METHOD.md §3): the formula on fixed vectors against a hand computation, the real all-MiniLM-L6-v2 on
identical and unrelated actions, stored embeddings reused until a text changes, and the model's checksum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dialogues.annotation.labels import ensure_default_labels
from dialogues.annotation.models import Label
from dialogues.annotation.services import TurnAnnotationInput, turn_annotation_save
from dialogues.library.models import Task
from evaluation import embeddings, sdiv
from evaluation.models import ActionEmbedding, DiversityScore
from evaluation.services import agent_actions, sdiv_evaluate
from omega_web.roles import Role
from tests.factories import simulated_run


def test_the_formula_matches_a_hand_computation():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # cosines: a·b = 0, a·c = b·c = 1/√2; the mean of the six off-diagonal entries is (0 + 2/√2) · 2 / 6
    x = (2 / math.sqrt(2)) * 2 / 6
    assert abs(sdiv.mean_pairwise(sdiv.similarity_matrix(vectors)) - x) < 1e-6
    assert abs(sdiv.s_div(x) - (1 - x**10) ** 10) < 1e-6
    assert abs(sdiv.s_div(0.5, alpha=2) - (1 - 0.25) ** 2) < 1e-6
    assert sdiv.mean_pairwise(sdiv.similarity_matrix(vectors[:1])) is None and sdiv.s_div(None) is None
    # negative mean similarity is clamped to 0 (S_div 1), identical vectors give x = 1 (S_div 0)
    assert sdiv.mean_pairwise(sdiv.similarity_matrix(np.array([[1.0, 0.0], [-1.0, 0.0]]))) == 0.0
    assert sdiv.s_div(sdiv.mean_pairwise(sdiv.similarity_matrix(np.ones((4, 3))))) < 1e-6


@pytest.mark.slow
def test_the_real_model_scores_identical_and_unrelated_actions():
    same = embeddings.encode(["I can give you six seats on the bus."] * 5)
    unrelated = embeddings.encode([
        "I can give you six seats on the bus.",
        "The mitochondria is the powerhouse of the cell.",
        "Quarterly tax filings are due in April.",
        "She painted the fence a bright shade of teal.",
        "Volcanic soil is rich in minerals.",
    ])  # fmt: skip
    assert same.shape == (5, embeddings.DIMENSIONS)
    assert 100 * sdiv.s_div(sdiv.mean_pairwise(sdiv.similarity_matrix(same))) < 1
    assert 100 * sdiv.s_div(sdiv.mean_pairwise(sdiv.similarity_matrix(unrelated))) > 99


def test_a_changed_model_file_is_refused(monkeypatch):
    monkeypatch.setattr(embeddings, "SAFETENSORS_SHA256", "0" * 64)
    embeddings._checked.cache_clear()
    try:
        with pytest.raises(embeddings.EmbeddingModelMissing, match="not all-MiniLM-L6-v2's"):
            embeddings._checked(embeddings.model_path())
    finally:
        embeddings._checked.cache_clear()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_scores_are_stored_reused_and_follow_corrections(demo_tasks, make_user):
    ensure_default_labels(Label)
    run = simulated_run(Task.objects.filter(scenario__codename="field_trip_seats"), name="sdiv")
    ids = list(run.dialogues.filter(status="finished").values_list("pk", flat=True))
    first = sdiv_evaluate(ids)
    assert first.dialogues == len(ids) and first.agents == 2 * len(ids) and first.encoded > 0
    score = DiversityScore.objects.filter(dialogue_id=ids[0], speaker=0).get()
    assert score.actions >= 2 and 0 <= score.x <= 1 and abs(score.s_div - sdiv.s_div(score.x)) < 1e-9
    assert ActionEmbedding.objects.count() == first.encoded
    # again: nothing is embedded or recomputed
    again = sdiv_evaluate(ids)
    assert again.encoded == 0 and again.recomputed == 0
    # a curator's correction changes one text: that turn is embedded again, its agent recomputed
    turn = run.dialogues.get(pk=ids[0]).turns.filter(speaker=0, action_type="speak").order_by("index").first()
    turn_annotation_save(
        turn_id=turn.pk,
        annotator=make_user(Role.CURATOR, "cur"),
        data=TurnAnnotationInput(corrected_text="Completely different words about tax law.", correction_reason="t"),
        version=0,
    )
    changed = sdiv_evaluate(ids)
    assert changed.encoded == 1 and changed.recomputed == 1
    assert ActionEmbedding.objects.get(turn=turn).text_sha256 != ""
    assert DiversityScore.objects.get(dialogue_id=ids[0], speaker=0).x != score.x


def test_agent_actions_leave_out_empty_contents():
    from types import SimpleNamespace

    turns = [
        SimpleNamespace(pk=1, speaker=0, text="Hello"),
        SimpleNamespace(pk=2, speaker=1, text="Hi"),
        SimpleNamespace(pk=3, speaker=0, text=""),  # did nothing / left
        SimpleNamespace(pk=4, speaker=0, text=" More "),
    ]
    assert agent_actions(SimpleNamespace(turns=turns), 0) == [(1, "Hello"), (4, "More")]


def test_the_web_process_never_imports_torch():
    """Every URL's view module is loaded, yet torch and sentence-transformers stay out until embeddings are needed."""
    import subprocess
    import sys

    code = (
        "import django, sys; django.setup(); import omega_web.urls, omega_web.asgi, evaluation.services; "
        "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "omega_web.settings"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_relevance_strip_has_a_cell_for_every_scored_action_even_one_the_heatmap_leaves_out():
    """S_div leaves out empty actions (a leave); the judge scores them: the strip beside the heatmap must show as
    many cells as the scores the panel says it averages (issue 28: "mean 9 scores" over an 8-cell strip)."""
    import json as json_module
    from types import SimpleNamespace

    import numpy as np

    from evaluation.plots import sif_figure, similarity_heatmap

    spoken = [0, 2, 4]
    heatmap = similarity_heatmap(spoken, ["a", "b", "c"], np.eye(3))
    diversity = SimpleNamespace(figure=json_module.dumps(heatmap))
    turns = [SimpleNamespace(index=i, pk=100 + i, action_type="speak") for i in (0, 2, 4, 6)]  # 6: a leave
    relevance = [(t, SimpleNamespace(score=0.5, samples=[{"justification": "ok"}], problem="")) for t in turns]
    figure = sif_figure(diversity, relevance, {t.pk: "text" for t in turns})
    strip = next(trace for trace in figure["data"] if trace.get("name") == "relevance")
    assert strip["y"] == ["#0", "#2", "#4", "#6"] and len(strip["z"]) == len(relevance)
    assert figure["layout"]["yaxis"]["categoryarray"] == ["#0", "#2", "#4", "#6"]
