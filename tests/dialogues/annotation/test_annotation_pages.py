"""Annotation over HTTP: the slots on the dialogue page, saving as you go, conflicts and errors that keep the
input, blind mode in the page, decisions and submission, adjudication, the queue, agreement and the label set;
and who may do what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dialogues.annotation.labels import ensure_default_labels
from dialogues.annotation.models import Adjudication, DialogueAnnotation, Label, TurnAnnotation
from dialogues.library.models import Task
from dialogues.runs.models import Dialogue, Run
from omega_web.roles import Role
from tests.factories import simulated_run

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HX-Request": "true"}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(autouse=True)
def _labels(db):
    ensure_default_labels(Label)


@pytest.fixture
def dialogue(demo_tasks) -> Dialogue:
    run = simulated_run([Task.objects.filter(scenario__codename="field_trip_seats").first()], name="annotate me")
    return run.dialogues.get(kept=True)


def test_the_dialogue_page_loads_annotation_slots_for_annotators_only(dialogue, client_for):
    annotator = client_for(Role.ANNOTATOR)
    page = annotator.get(reverse("dialogue_detail", args=[dialogue.pk])).content.decode()
    assert reverse("dialogue_annotations", args=[dialogue.pk]) in page and "data-annotating" in page
    slots = annotator.get(reverse("dialogue_annotations", args=[dialogue.pk]), headers=HX).content.decode()
    assert slots.count('class="annot-slot"') == dialogue.turns.count()
    assert slots.count('hx-swap-oob="true"') == dialogue.turns.count() + 1  # every turn and the decision panel
    assert "<kbd>1</kbd>" in slots and "parroting" in slots
    viewer = client_for(Role.VIEWER)
    assert "data-annotating" not in viewer.get(reverse("dialogue_detail", args=[dialogue.pk])).content.decode()
    assert viewer.get(reverse("dialogue_annotations", args=[dialogue.pk])).status_code == 403


def test_saving_a_turn_annotation_and_a_refused_one_keeps_the_input(dialogue, client_for):
    client = client_for(Role.ANNOTATOR)
    turn = dialogue.turns.order_by("index")[1]
    url = reverse("turn_annotation", args=[turn.pk])
    parroting, deadlock = Label.objects.get(name="parroting").pk, Label.objects.get(name="deadlock").pk
    first = {"version": 0, "labels": [parroting, deadlock], "quality": "2", "note": HOSTILE}
    saved = client.post(url, first, headers=HX)
    assert saved.status_code == 200 and "Saved" in saved.content.decode()
    assert HOSTILE not in saved.content.decode() and "&lt;script&gt;" in saved.content.decode()
    row = TurnAnnotation.objects.get(turn=turn)
    assert row.version == 1 and row.quality == 2 and row.labels.count() == 2
    # a correction without a reason: refused, the typed text stays in the form
    refused = client.post(
        url, {"version": 1, "labels": [parroting], "corrected_text": "A better line entirely."}, headers=HX
    )
    body = refused.content.decode()
    assert refused.status_code == 400 and "say why the text is corrected" in body
    assert "A better line entirely." in body and TurnAnnotation.objects.get(turn=turn).version == 1
    # a stale version (another tab saved meanwhile): a conflict, the input kept
    client.post(url, {"version": 1, "labels": [deadlock], "quality": "3"}, headers=HX)
    stale = client.post(url, {"version": 1, "labels": [parroting], "note": "mine from tab one"}, headers=HX)
    body = stale.content.decode()
    assert stale.status_code == 409 and "since you opened it here" in body and "mine from tab one" in body
    assert 'name="version" value="2"' in body  # saving again replaces it knowingly
    assert TurnAnnotation.objects.get(turn=turn).quality == 3


def test_blind_mode_in_the_page_and_the_decision(dialogue, make_user):
    from django.test import Client

    ann, bob = Client(), Client()
    ann.force_login(make_user(Role.ANNOTATOR, "ann"))
    bob.force_login(make_user(Role.ANNOTATOR, "bob"))
    turn = dialogue.turns.order_by("index").first()
    ann.post(reverse("turn_annotation", args=[turn.pk]), {"version": 0, "note": "ann thinks so"}, headers=HX)
    ann.post(
        reverse("dialogue_decision", args=[dialogue.pk]), {"version": 0, "decision": "reject", "submit": ""}, headers=HX
    )
    before = bob.get(reverse("dialogue_annotations", args=[dialogue.pk]), headers=HX).content.decode()
    assert "ann thinks so" not in before and "hidden until you submit" in before
    nothing = bob.post(reverse("dialogue_decision", args=[dialogue.pk]), {"version": 0, "submit": ""}, headers=HX)
    assert nothing.status_code == 400 and "before submitting" in nothing.content.decode()
    done = bob.post(
        reverse("dialogue_decision", args=[dialogue.pk]), {"version": 0, "decision": "accept", "submit": ""}, headers=HX
    )
    assert done.status_code == 200 and done["HX-Trigger"] == "annotations-changed"
    assert "<strong>ann</strong>: reject" in done.content.decode()
    after = bob.get(reverse("dialogue_annotations", args=[dialogue.pk]), headers=HX).content.decode()
    assert "ann thinks so" in after
    assert DialogueAnnotation.objects.filter(submitted_at__isnull=False).count() == 2


def test_adjudication_queue_agreement_and_roles(dialogue, client_for, make_user):
    curator = client_for(Role.CURATOR)
    annotator = client_for(Role.ANNOTATOR)
    url = reverse("dialogue_adjudicate", args=[dialogue.pk])
    assert annotator.post(url, {"version": 0, "decision": "accept"}).status_code == 403  # an annotator cannot curate
    decided = curator.post(url, {"version": 0, "decision": "accept", "note": "fine"}, headers=HX)
    assert decided.status_code == 200 and Adjudication.objects.get(dialogue=dialogue).decision == "accept"
    late = curator.post(url, {"version": 0, "decision": "reject"}, headers=HX)
    assert late.status_code == 409 and "another curator" in late.content.decode()
    # the queue sends an annotator to the dialogue
    assert annotator.get(reverse("annotation_queue")).status_code == 200
    nxt = annotator.get(reverse("annotation_next"), {"run": dialogue.run_id})
    assert nxt.status_code == 302 and nxt["Location"].startswith(reverse("dialogue_detail", args=[dialogue.pk]))
    # agreement is for curators
    assert annotator.get(reverse("run_agreement", args=[dialogue.run_id])).status_code == 403
    page = curator.get(reverse("run_agreement", args=[dialogue.run_id])).content.decode()
    assert "Decisions (accept / reject / needs review)" in page and "undefined" in page
    # a viewer cannot annotate
    viewer = client_for(Role.VIEWER)
    turn = dialogue.turns.first()
    assert viewer.post(reverse("turn_annotation", args=[turn.pk]), {"version": 0}).status_code == 403
    assert viewer.post(reverse("dialogue_decision", args=[dialogue.pk]), {"version": 0}).status_code == 403


def test_the_label_set_page(db, client_for):
    curator = client_for(Role.CURATOR)
    page = curator.get(reverse("label_list")).content.decode()
    assert "style-transfer artifact" in page and 'name="label_id"' in page
    added = curator.post(reverse("label_edit"), {"version": 0, "name": "too formal", "position": 9, "active": "on"})
    assert added.status_code == 302 and Label.objects.filter(name="too formal", active=True).exists()
    label = Label.objects.get(name="parroting")
    rename = {"label_id": label.pk, "version": label.version, "name": "echoing", "position": 1}
    curator.post(reverse("label_edit"), rename)
    label.refresh_from_db()
    assert label.name == "echoing" and not label.active and label.version == 2
    stale = curator.post(
        reverse("label_edit"), {"label_id": label.pk, "version": 1, "name": "parrot", "position": 1}, follow=True
    )
    assert "Not saved: someone changed this label" in stale.content.decode()
    viewer = client_for(Role.VIEWER)
    assert 'name="label_id"' not in viewer.get(reverse("label_list")).content.decode()
    assert viewer.post(reverse("label_edit"), {"version": 0, "name": "x", "position": 1}).status_code == 403
    assert Run.objects.count() == 0


def test_a_curator_adopts_an_annotators_correction(dialogue, make_user):
    from django.test import Client

    from dialogues.annotation.models import Correction

    ann, cur = Client(), Client()
    ann.force_login(make_user(Role.ANNOTATOR, "ann"))
    cur.force_login(make_user(Role.CURATOR, "cur"))
    turn = dialogue.turns.order_by("index")[1]
    proposal = {"version": 0, "corrected_text": "A sharper line.", "correction_reason": "clearer"}
    ann.post(reverse("turn_annotation", args=[turn.pk]), proposal, headers=HX)
    slot = cur.get(reverse("turn_annotation", args=[turn.pk])).content.decode()
    assert ">Adopt</button>" in slot and 'value="adopted from ann: clearer"' in slot
    adopted = cur.post(
        reverse("turn_annotation", args=[turn.pk]),
        {"version": 0, "corrected_text": "A sharper line.", "correction_reason": "adopted from ann: clearer"},
        headers=HX,
    )
    assert adopted.status_code == 200
    mine = TurnAnnotation.objects.get(turn=turn, annotator__username="cur")
    assert mine.corrected_text == "A sharper line." and mine.correction_reason == "adopted from ann: clearer"
    assert Correction.objects.filter(turn=turn).count() == 2  # the proposal and the adoption, both kept
    assert ">Adopt</button>" not in cur.get(reverse("turn_annotation", args=[turn.pk])).content.decode()


def test_the_queue_says_why_nothing_is_left_for_this_annotator(dialogue, make_user):
    from django.test import Client

    dialogue.run.annotators_target = 2
    dialogue.run.save(update_fields=["annotators_target"])
    ann, bob = Client(), Client()
    ann.force_login(make_user(Role.ANNOTATOR, "ann"))
    bob.force_login(make_user(Role.ANNOTATOR, "bob"))
    ann.post(
        reverse("dialogue_decision", args=[dialogue.pk]), {"version": 0, "decision": "accept", "submit": ""}, headers=HX
    )
    # 1 of 2 annotators done: ann has nothing left, and is told the dialogue waits for someone else
    told = ann.get(reverse("annotation_next"), {"run": dialogue.run_id}, follow=True).content.decode()
    assert "you have submitted the one dialogue that still needs annotators; it waits for other annotators." in told
    assert "every dialogue has" not in told
    # bob is sent to it; once bob submits, every dialogue has its annotators
    nxt = bob.get(reverse("annotation_next"), {"run": dialogue.run_id})
    assert (
        nxt["Location"].startswith(reverse("dialogue_detail", args=[dialogue.pk])) and "annotate=1" in nxt["Location"]
    )
    bob.post(
        reverse("dialogue_decision", args=[dialogue.pk]), {"version": 0, "decision": "accept", "submit": ""}, headers=HX
    )
    told = bob.get(reverse("annotation_next"), {"run": dialogue.run_id}, follow=True).content.decode()
    assert "every dialogue has all the annotators its run wants." in told
