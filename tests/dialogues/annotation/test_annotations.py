"""Annotation and curation in the services: saving and correcting turns (the original kept, every correction with
author, time and reason), conflicts when the same item is saved twice at once, blind mode, adjudication, the
queue, progress, and agreement with its disagreements."""

from __future__ import annotations

import pytest

from dialogues.annotation.labels import ensure_default_labels
from dialogues.annotation.models import Correction, Label, TurnAnnotation
from dialogues.annotation.selectors import dialogue_panel, next_for, progress, run_agreement, sees_others
from dialogues.annotation.services import (
    Conflict,
    TurnAnnotationInput,
    adjudicate,
    dialogue_annotation_save,
    label_save,
    turn_annotation_save,
)
from dialogues.library.models import Task
from dialogues.runs.models import Dialogue, Run, Turn
from omega_web.roles import Role
from tests.factories import DialogueAnnotationFactory, TurnAnnotationFactory, simulated_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _labels(db):
    ensure_default_labels(Label)  # the data migration's rows do not survive the flush of transactional tests


@pytest.fixture
def run(demo_tasks) -> Run:
    return simulated_run(
        Task.objects.filter(scenario__codename__in=["field_trip_seats", "library_roof_fund"]), name="to annotate"
    )


@pytest.fixture
def people(make_user):
    return {
        "ann": make_user(Role.ANNOTATOR, "ann"),
        "bob": make_user(Role.ANNOTATOR, "bob"),
        "cat": make_user(Role.ANNOTATOR, "cat"),
        "cur": make_user(Role.CURATOR, "cur"),
        "dan": make_user(Role.CURATOR, "dan"),
    }


def label(name: str) -> int:
    return Label.objects.get(name=name).pk


def kept(run: Run) -> list[Dialogue]:
    return list(run.dialogues.filter(kept=True).order_by("id"))


def test_the_default_label_set():
    assert list(Label.objects.values_list("name", flat=True)) == [
        "parroting", "topic drift", "deadlock", "off-character", "secret leaked", "unsafe", "strong strategy",
        "style-transfer artifact",
    ]  # fmt: skip


def test_annotate_and_correct_a_turn_keeping_the_original(run, people):
    turn = Turn.objects.filter(dialogue=kept(run)[0]).order_by("index")[2]
    original = turn.argument
    data = TurnAnnotationInput(
        labels=[label("parroting"), label("deadlock")],
        quality=2,
        note="says the same again",
        corrected_text="I could take six seats if you help me find a bus.",
        correction_reason="moves the talk forward",
    )
    row = turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=data, version=0)
    assert (
        row.version == 1
        and row.quality == 2
        and set(row.labels.values_list("name", flat=True))
        == {
            "parroting",
            "deadlock",
        }
    )
    turn.refresh_from_db()
    assert turn.argument == original  # the turn is never overwritten
    (first,) = Correction.objects.filter(turn=turn)
    assert (first.original, first.text, first.reason, first.author) == (
        original,
        data.corrected_text,
        "moves the talk forward",
        people["ann"],
    )
    # a second correction, then withdrawing it: every step is kept
    again = TurnAnnotationInput(corrected_text="Six seats and a bus, then?", correction_reason="shorter")
    turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=again, version=1)
    row = turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=TurnAnnotationInput(), version=2)
    assert row.corrected_text == "" and row.version == 3 and row.labels.count() == 0
    assert list(Correction.objects.filter(turn=turn).values_list("text", flat=True)) == [
        data.corrected_text,
        "Six seats and a bus, then?",
        "",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (TurnAnnotationInput(corrected_text="Something else entirely."), "say why the text is corrected"),
        (TurnAnnotationInput(quality=6), "quality is 1 to 5"),
        (TurnAnnotationInput(labels=[999999]), "unknown or retired label"),
        (TurnAnnotationInput(note="x" * 4001), "longer than 4,000"),
    ],
)
def test_bad_annotations_are_refused_and_nothing_is_saved(run, people, data, message):
    turn = Turn.objects.filter(dialogue=kept(run)[0]).first()
    with pytest.raises(ValueError, match=message):
        turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=data, version=0)
    assert not TurnAnnotation.objects.exists() and not Correction.objects.exists()


def test_the_same_text_is_no_correction(run, people):
    turn = Turn.objects.filter(dialogue=kept(run)[0]).first()
    same = TurnAnnotationInput(corrected_text=f"  {turn.argument} ")
    assert turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=same, version=0).corrected_text == ""
    assert not Correction.objects.exists()


def test_saving_the_same_item_twice_at_once_is_a_conflict_and_loses_nothing(run, people):
    turn = Turn.objects.filter(dialogue=kept(run)[0]).first()
    first = TurnAnnotationInput(quality=4, note="tab one")
    turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=first, version=0)
    with pytest.raises(Conflict) as stale_new:  # a second tab that opened before the first saved
        turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=TurnAnnotationInput(note="2"), version=0)
    assert stale_new.value.current is None or stale_new.value.current.note == "tab one"
    turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=TurnAnnotationInput(quality=5), version=1)
    with pytest.raises(Conflict) as stale:
        turn_annotation_save(turn_id=turn.pk, annotator=people["ann"], data=TurnAnnotationInput(quality=1), version=1)
    assert stale.value.current.quality == 5 and "since you opened it" in stale.value.message
    assert TurnAnnotation.objects.get(turn=turn).quality == 5

    dialogue = kept(run)[0]
    adjudicate(dialogue_id=dialogue.pk, curator=people["cur"], decision="accept", note="fine", version=0)
    with pytest.raises(Conflict, match="another curator"):
        adjudicate(dialogue_id=dialogue.pk, curator=people["dan"], decision="reject", note="no", version=0)
    changed = adjudicate(dialogue_id=dialogue.pk, curator=people["dan"], decision="reject", note="later", version=1)
    assert changed.version == 2 and changed.curator == people["dan"]
    with pytest.raises(Conflict) as late:
        adjudicate(dialogue_id=dialogue.pk, curator=people["cur"], decision="accept", note="", version=1)
    assert late.value.current.decision == "reject"


def test_blind_mode_hides_others_until_one_submits(run, people):
    dialogue = kept(run)[0]
    turn = dialogue.turns.order_by("index").first()
    turn_annotation_save(
        turn_id=turn.pk, annotator=people["ann"], data=TurnAnnotationInput(labels=[label("unsafe")]), version=0
    )
    dialogue_annotation_save(
        dialogue_id=dialogue.pk, annotator=people["ann"], decision="reject", note="", submit=True, version=0
    )
    bob_view = dialogue_panel(dialogue, people["bob"])
    assert not bob_view.visible and bob_view.hidden == 1 and bob_view.others == []
    assert bob_view.turns[0].others == [] and bob_view.turns[0].hidden == 1
    with pytest.raises(ValueError, match="before submitting"):
        dialogue_annotation_save(
            dialogue_id=dialogue.pk, annotator=people["bob"], decision="", note="", submit=True, version=0
        )
    dialogue_annotation_save(
        dialogue_id=dialogue.pk, annotator=people["bob"], decision="accept", note="", submit=True, version=0
    )
    bob_view = dialogue_panel(dialogue, people["bob"])
    assert bob_view.visible and [o.decision for o in bob_view.others] == ["reject"]
    assert [o.annotator.username for o in bob_view.turns[0].others] == ["ann"]
    assert sees_others(dialogue, people["cur"])  # curators adjudicate: they see everything
    Run.objects.filter(pk=run.pk).update(blind_annotation=False)
    assert sees_others(Dialogue.objects.select_related("run").get(pk=dialogue.pk), people["cat"])


def test_the_queue_and_progress(run, people):
    first, second, *_ = kept(run)

    def decide(dialogue, who, decision, submit, version):
        dialogue_annotation_save(
            dialogue_id=dialogue.pk, annotator=people[who], decision=decision, note="", submit=submit, version=version
        )

    assert next_for(people["ann"], run_id=run.pk) == first
    decide(first, "ann", "", False, 0)
    assert next_for(people["ann"], run_id=run.pk) == first  # started, not submitted: that one first
    decide(first, "ann", "accept", True, 1)
    assert next_for(people["ann"], run_id=run.pk) == second
    assert next_for(people["bob"], run_id=run.pk) == second  # fewest submitted first
    decide(first, "bob", "accept", True, 0)
    assert next_for(people["cat"], run_id=run.pk) == second  # the first has its two annotators
    report = progress(run)
    assert report["complete"] == 1 and report["total"] == len(kept(run)) and report["target"] == 2
    assert [(p["name"], p["submitted"]) for p in report["people"]] == [("ann", 1), ("bob", 1)]


def test_agreement_and_disagreements_per_run(run, people):
    dialogues = kept(run)
    assert len(dialogues) >= 2
    decisions = {"ann": ["accept", "reject"], "bob": ["accept", "accept"]}
    for name, choices in decisions.items():
        for dialogue, decision in zip(dialogues, choices, strict=False):
            DialogueAnnotationFactory(dialogue=dialogue, annotator=people[name], decision=decision)
    turn = dialogues[0].turns.order_by("index").first()
    TurnAnnotationFactory(turn=turn, annotator=people["ann"], labels=[label("deadlock")])
    result = run_agreement(run)
    # two annotators, two dialogues: p_o = 1/2; ann accept 1 reject 1, bob accept 2: p_e = (1·2 + 1·0)/4 = 1/2 → κ = 0
    assert result.decisions.statistic == "Cohen's kappa" and result.decisions.items == 2
    assert result.decisions.value == pytest.approx(0.0)
    assert [d["dialogue"].pk for d in result.disagreements] == [dialogues[1].pk]
    (deadlock,) = result.labels
    assert deadlock.label.name == "deadlock" and deadlock.used == 1
    assert result.label_disagreements[0]["with"] == ["ann"] and result.label_disagreements[0]["without"] == ["bob"]


def test_label_set_edits_and_their_conflicts():
    made = label_save(label_id=None, name="  too  long winded ", description="", position=9, active=True, version=0)
    assert made.name == "too long winded"
    with pytest.raises(ValueError, match="there is a label"):
        label_save(label_id=None, name="Parroting", description="", position=1, active=True, version=0)
    label_save(label_id=made.pk, name="verbose", description="", position=9, active=True, version=1)
    with pytest.raises(Conflict):
        label_save(label_id=made.pk, name="wordy", description="", position=9, active=True, version=1)
    assert Label.objects.get(pk=made.pk).name == "verbose"
