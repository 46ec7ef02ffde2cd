"""Fixtures shared by the areas' tests: a corpus's people and its annotated data (corpora, corpus_import)."""

from __future__ import annotations

import pytest

from dialogues.annotation.models import Label
from dialogues.annotation.services import TurnAnnotationInput, dialogue_annotation_save, turn_annotation_save
from omega_web.roles import Role
from tests.factories import CORRECTED, scenario_tasks, simulated_run


@pytest.fixture
def people(make_user):
    return {"ann": make_user(Role.ANNOTATOR, "ann"), "cur": make_user(Role.CURATOR, "cur")}


@pytest.fixture
def corpus_data(demo_tasks, people):
    """field_trip_seats (train split, one kept attempt) with an annotation, a curator's correction of turn 4 (speak)
    and an annotator's correction of turn 3 (a proposal only: not exported), accepted. The labels must exist (the
    tests that use it add the default ones)."""
    run = simulated_run(scenario_tasks("field_trip_seats"), name="field_trip_seats")
    dialogue = run.dialogues.get(kept=True)
    turns = list(dialogue.turns.order_by("index"))
    parroting = Label.objects.get(name="parroting").pk
    turn_annotation_save(
        turn_id=turns[3].pk,
        annotator=people["ann"],
        data=TurnAnnotationInput(labels=[parroting], quality=2, corrected_text="An annotator's idea.",
                                 correction_reason="proposal"),
        version=0,
    )  # fmt: skip
    turn_annotation_save(
        turn_id=turns[4].pk,
        annotator=people["cur"],
        data=TurnAnnotationInput(corrected_text=CORRECTED, correction_reason="a concrete offer"),
        version=0,
    )
    dialogue_annotation_save(
        dialogue_id=dialogue.pk, annotator=people["ann"], decision="accept", note="", submit=True, version=0
    )
    return run, dialogue
