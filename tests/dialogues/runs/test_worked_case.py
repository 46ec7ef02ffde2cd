"""The paper's worked case (Appendix E, METHOD.md §2.8) replayed turn by turn through the test LLM server, the
real client and the persisted step service, with 3 judge samples: the same branches, ratings and leaves, and
the dialogue is kept.

The utterances are our own stand-ins; what is checked is the method's behaviour around them.
"""

from __future__ import annotations

import asyncio

import pytest

from dialogues.library.models import Task
from dialogues.llm.client import OpenAIChatClient
from dialogues.runs.driving import step_dialogue
from dialogues.runs.models import Dialogue, LLMCall
from tests.factories import created_run, server_backend
from tests.support import llm_answers as a
from tests.support.llm_server import ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)

WORKED_CASE_TASK = "01H7VN6K4XYJF7RVMKEEBKT4JP"  # donate_funds: Hendrick Heinz and Ethan Smith


def script_worked_case(server: ScriptedLLMServer) -> None:
    native = [a.action(f"native line {i}") for i in range(6)]
    server.script("action.native", *native, a.action("I am glad we found a way that works for both of us."))
    server.script(
        "rating",
        a.samples((7, 7, 7, 7), (7, 7, 7, 7), (7, 7, 8, 7)),  # after turn 5: 7.00 / 7.17
        a.samples((8, 8, 9, 9), (8, 9, 9, 9), (8, 9, 8, 9)),  # after turn 14: 8.33 / 8.83
        a.samples((8, 8, 8, 8, 0), (8, 8, 8, 8), (8, 8, 8, 8)),  # after turn 15: 8.00 / 8.00
    )
    server.script(
        "nsi.own_utility",
        a.utility(("the donation of 500", 90, 0.9, 0.4), ("the friendship", 70, 0.6, 0.9)),
        a.utility(("staying within 300", 95, 1.0, 0.9), ("a meaningful contribution", 60, 0.5, 0.7)),
    )
    server.script("nsi.interests", a.action("my interests draft"), a.action("his interests draft"))
    server.script("nsi.other_utility", a.utility(), a.utility())
    server.script("nsi.difference", a.action("difference draft 1"), a.action("difference draft 2"))
    server.script(
        "nsi.proposal_draft",
        '{"thought": "t", "draft": "recognition in return"}',
        '{"thought": "t", "draft": "accept recognition"}',
    )
    server.script("nsi.update", a.update("co-chair role and software help"), a.update("this works"))
    server.script(
        "nsi.proposal",
        a.proposal("present_proposal", "initial proposal A"),
        a.proposal("present_proposal", "initial proposal B"),
        a.proposal("revise_proposal", "revised: co-chair role"),
        a.proposal("confirm_proposal", "I accept the revised proposal"),
    )
    server.script("nsi.style_transfer", *[f"styled turn {t}" for t in range(6, 14)])
    server.script("nsi.confirm", a.proposal("confirm_proposal", "Thank you for agreeing, this is a win for both."))


def test_worked_case(imported_sotopia):
    task = Task.objects.get(external_id=WORKED_CASE_TASK)
    with ScriptedLLMServer("Qwen2.5-72B-Instruct") as server:
        script_worked_case(server)
        run = created_run([task], name="worked case", backend=server_backend(server))
        dialogue = run.dialogues.get()

        async def replay():
            client = OpenAIChatClient([server.base_url], server.model)
            reports = []
            try:
                while not reports or not reports[-1].finished:
                    reports.append(await step_dialogue(dialogue.pk, lambda backend: client))
                    assert reports[-1].kind != "failed", reports[-1].failure
            finally:
                await client.aclose()
            return reports

        asyncio.run(replay())
        assert server.remaining() == {}  # every scripted answer was used, and nothing else was asked

    dialogue.refresh_from_db()
    turns = list(dialogue.turns.select_related("rating").order_by("index"))
    names = [task.agent1.full_name, task.agent2.full_name]
    assert names == ["Hendrick Heinz", "Ethan Smith"]
    expected = (
        [("NSC", "", "")] * 6
        + [("NSI", "resource_assessment", "")] * 2
        + [("NSI", "assessment_of_difference", "")] * 2
        + [("NSI", "initial_proposal", "present_proposal")] * 2
        + [("NSI", "update_proposal", "revise_proposal"), ("NSI", "update_proposal", "confirm_proposal")]
        + [("NSI", "exit_confirm", "confirm_proposal"), ("NSC", "", ""), ("forced", "", ""), ("forced", "", "")]
    )
    assert [(t.branch, t.nsi_step, t.proposal) for t in turns] == expected
    assert [t.index for t in turns] == list(range(18))
    # turn 13 is Ethan's confirm; Hendrick confirms at 14 (forced); Ethan, the first confirmer, speaks at 15
    assert (turns[13].speaker, turns[14].speaker, turns[15].speaker) == (1, 0, 1)
    assert turns[14].forced and turns[14].argument.startswith("Thank you for agreeing")
    assert [(t.index, t.action_type, t.forced) for t in turns[16:]] == [(16, "leave", True), (17, "leave", True)]
    ratings = {t.index: (round(t.rating.goal_c, 2), round(t.rating.goal_p, 2)) for t in turns if hasattr(t, "rating")}
    assert ratings == {5: (7.0, 7.17), 14: (8.33, 8.83), 15: (8.0, 8.0)}
    assert turns[6].draft == "my interests draft" and turns[6].argument == "styled turn 6"
    assert turns[6].own_utility["U"] == pytest.approx((90 * 0.9 * 0.4 + 70 * 0.6 * 0.9) / 2)
    assert turns[9].other_utility is not None and turns[12].own_utility["matters"]
    assert (dialogue.status, dialogue.end_reason, dialogue.nsi_used) == ("finished", "both_left", True)
    assert (dialogue.final_goal_c, dialogue.filter_passed, dialogue.kept) == (8.0, True, True)
    assert "passes: final goal_c 8.00 vs 8" in dialogue.filter_note
    assert Dialogue.objects.filter(run=run).count() == 1  # no regeneration needed
    # every call is stored with its purpose, messages, raw responses and parsed result
    calls = LLMCall.objects.filter(dialogue=dialogue)
    assert calls.count() == 35 and not calls.exclude(error="").exists()
    rating_call = calls.filter(purpose="rating").first()
    assert len(rating_call.responses) == 3 and rating_call.parsed[0]["goal_c"] == 7.0
    assert "Hendrick Heinz's goal" in rating_call.messages[0]["content"]
