"""The S-IF panel of the dialogue page: not evaluated, computed on a worker by a researcher, then each agent's
S_div and heatmap, with the actions' text escaped in the hover labels."""

from __future__ import annotations

import json
import re

import pytest

from dialogues.models import Dialogue, DialogueStatus, Run, Task, Turn
from evaluation.models import DiversityScore
from omega_web.roles import Role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def dialogue(demo_tasks):
    task = Task.objects.first()
    run = Run.objects.create(name="r", variant="dsi", config={}, prompt_set_version="x", backend="simulated", model="m")
    d = Dialogue.objects.create(run=run, task=task, status=DialogueStatus.FINISHED, turns_count=5)
    texts = ["Hello <script>alert(1)</script> there", "Hi, nice to see you.", "Could we share the seats?",
             "Sure, six each.", "Then it is settled, six each."]  # fmt: skip
    for i, text in enumerate(texts):
        Turn.objects.create(dialogue=d, index=i, speaker=i % 2, action_type="speak", argument=text, branch="NSC")
    return d


def test_the_panel_computes_and_shows_s_div_with_escaped_hovers(dialogue, client_for):
    viewer, researcher = client_for(Role.VIEWER), client_for(Role.RESEARCHER)
    panel = viewer.get(f"/dialogues/{dialogue.pk}/sif/").content.decode()
    assert "Not evaluated yet" in panel and "Compute S_div" not in panel  # a viewer cannot start it
    assert viewer.post(f"/dialogues/{dialogue.pk}/sif/compute/").status_code == 403
    answer = researcher.post(f"/dialogues/{dialogue.pk}/sif/compute/")  # eager Celery in tests: done at once
    assert answer.status_code == 200
    assert DiversityScore.objects.filter(dialogue=dialogue).count() == 2
    panel = researcher.get(f"/dialogues/{dialogue.pk}/sif/").content.decode()
    assert "S_div ×100" in panel and "Evaluate again" in panel and "<script>alert(1)" not in panel
    figures = re.findall(r'data-figure="([^"]*)"', panel)
    assert len(figures) == 2
    import html as html_lib

    first = json.loads(html_lib.unescape(figures[0]))
    hover = first["data"][0]["customdata"]
    assert len(hover) == 3 and "&lt;script&gt;alert(1)&lt;/script&gt;" in hover[0][1]
    score = DiversityScore.objects.get(dialogue=dialogue, speaker=1)
    assert score.actions == 2 and f"{100 * score.s_div:.1f}" in panel


def test_the_run_panel_shows_the_table_and_the_sorted_chart(dialogue, client_for):
    researcher = client_for(Role.RESEARCHER)
    run = dialogue.run
    assert "Not evaluated yet" in researcher.get(f"/runs/{run.pk}/sif/").content.decode()
    assert client_for(Role.VIEWER).post(f"/runs/{run.pk}/sif/compute/").status_code == 403
    assert researcher.post(f"/runs/{run.pk}/sif/compute/").status_code == 200
    panel = researcher.get(f"/runs/{run.pk}/sif/").content.decode()
    scores = {s.speaker: 100 * s.s_div for s in DiversityScore.objects.filter(dialogue=dialogue)}
    assert f"{scores[0]:.1f}" in panel and f"{scores[1]:.1f}" in panel and f"{(scores[0] + scores[1]) / 2:.1f}" in panel
    assert "1 of 1" in panel and "average turns" in panel
