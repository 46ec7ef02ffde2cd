"""What each agent sees of a task, checked on real SOTOPIA tasks of every relationship type (family, which no
SOTOPIA scenario uses, on a demo task) and on hand-made cases for the rules themselves."""

from __future__ import annotations

import pytest

from dialogues.engine.context import (
    Profile,
    RelationshipType,
    TaskSpec,
    agent_context,
    background_seen_by_other,
    full_background,
    omniscient_context,
    render_for,
)
from dialogues.library.models import Task
from dialogues.library.selectors import task_spec

ALICE = Profile(
    "Alice",
    "Moreau",
    34,
    "Ship Captain",
    "Woman",
    "She/her",
    "Alice sails every weekend.",
    "Alice is bold and fair.",
    "She once lost a ship.",
)
BRUNO = Profile(
    "Bruno",
    "Vance",
    61,
    "Beekeeper",
    "Man",
    "He/him",
    "Bruno sells honey at the market.",
    "Bruno is patient and wry.",
    "He has never tasted honey.",
)


def spec(relationship: RelationshipType) -> TaskSpec:
    return TaskSpec(
        scenario="Two people meet at a harbour. <p viewer='environment'>The harbour closes tonight.</p>",
        relationship=relationship,
        agents=(ALICE, BRUNO),
        goals=(
            "Buy honey (<extra_info>Extra information: you have 20 coins</extra_info>)",
            "Sell honey (<strategy_hint>Hint: start high</strategy_hint>)",
        ),
    )


def test_full_background_follows_sotopia_wording():
    assert full_background(ALICE) == (
        "Alice Moreau is a 34-year-old female ship captain. She/her pronouns. Alice sails every weekend. "
        "Personality and values description: Alice is bold and fair. Alice's secrets: She once lost a ship."
    )


@pytest.mark.parametrize(
    ("relationship", "seen"),
    [
        pytest.param(RelationshipType.STRANGER, "", id="stranger-sees-nothing"),
        pytest.param(RelationshipType.KNOW_BY_NAME, "Bruno Vance", id="know-by-name-sees-the-name"),
        pytest.param(
            RelationshipType.ACQUAINTANCE,
            "Bruno Vance is a 61-year-old male beekeeper. He/him pronouns. Bruno sells honey at the market.",
            id="acquaintance-sees-public-info",
        ),
        pytest.param(
            RelationshipType.FRIEND,
            "Bruno Vance is a 61-year-old male beekeeper. He/him pronouns. Bruno sells honey at the market. "
            "Personality and values description: Bruno is patient and wry.",
            id="friend-sees-personality",
        ),
        pytest.param(RelationshipType.ROMANTIC, "Personality and values description", id="romantic-like-friend"),
        pytest.param(RelationshipType.FAMILY, "Personality and values description", id="family-like-friend"),
    ],
)
def test_other_background_by_relationship(relationship, seen):
    other = background_seen_by_other(BRUNO, relationship)
    assert seen in other if seen else other == ""
    assert "secret" not in other.lower() and BRUNO.secret not in other


def test_agent_view_hides_the_other_goal_and_environment_text():
    text = agent_context(spec(RelationshipType.STRANGER), 0)
    assert text.splitlines() == [
        "Here is the context of this interaction:",
        "Scenario: Two people meet at a harbour.",
        "Participants: Alice Moreau and Bruno Vance",
        f"Alice Moreau's background: {full_background(ALICE)}",
        "Bruno Vance's background: Unknown",
        "Alice Moreau's goal: Buy honey (Extra information: you have 20 coins)",
        "Bruno Vance's goal: Unknown",
    ]


def test_second_agent_view_mirrors_the_first():
    text = agent_context(spec(RelationshipType.ACQUAINTANCE), 1)
    assert "Alice Moreau's goal: Unknown" in text
    assert "Bruno Vance's goal: Sell honey (Hint: start high)" in text
    assert BRUNO.secret in text and ALICE.secret not in text
    assert "Alice sails every weekend." in text  # acquaintances see public info


def test_omniscient_view_shows_everything():
    text = omniscient_context(spec(RelationshipType.STRANGER))
    assert "The harbour closes tonight." in text
    assert ALICE.secret in text and BRUNO.secret in text
    assert "Unknown" not in text
    assert "Buy honey (Extra information: you have 20 coins)" in text and "Sell honey (Hint: start high)" in text


def test_render_for_keeps_only_blocks_meant_for_the_viewer():
    text = "A <p viewer=\"agent_0\">zero</p><p viewer='agent_1'>one</p> <clarification_hint>c</clarification_hint>"
    assert render_for(text, "agent_0") == "A zero c"
    assert render_for(text, "agent_1") == "A one c"
    assert render_for(text, "environment") == "A zeroone c"


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["0", "1", "2", "3", "4", "5"])
def test_real_tasks_of_every_relationship_type(imported_sotopia, demo_tasks, code):
    task = (
        Task.objects.filter(scenario__relationship=code, source="sotopia")
        .select_related("scenario", "agent1", "agent2")
        .first()
    )
    if task is None:  # SOTOPIA has no family scenario; the demo tasks have one
        assert code == "5"
        task = Task.objects.select_related("scenario", "agent1", "agent2").get(scenario__relationship=code)
    me, other = task.agent1, task.agent2
    for index, (viewer, seen) in enumerate([(me, other), (other, me)]):
        text = agent_context(task_spec(task), index)
        lines = dict(line.split(": ", 1) for line in text.splitlines()[1:])
        assert lines["Participants"] == f"{me.full_name} and {other.full_name}"
        assert lines[f"{viewer.full_name}'s background"].endswith(f"{viewer.first_name}'s secrets: {viewer.secret}")
        assert lines[f"{seen.full_name}'s goal"] == "Unknown"
        own_goal = lines[f"{viewer.full_name}'s goal"]
        assert own_goal != "Unknown" and "<extra_info>" not in own_goal and "<strategy_hint>" not in own_goal
        other_background = lines[f"{seen.full_name}'s background"]
        assert seen.secret not in other_background
        expected = {
            "0": "Unknown",
            "1": seen.full_name,
        }.get(code)
        if expected is not None:
            assert other_background == expected
        else:
            assert other_background.startswith(f"{seen.full_name} is a {seen.age}-year-old")
            assert ("Personality and values description" in other_background) == (code != "2")
    judge = omniscient_context(task_spec(task))
    assert me.secret in judge and other.secret in judge and "Unknown" not in judge


@pytest.mark.django_db
def test_environment_only_scenario_text_is_hidden_from_agents(imported_sotopia):
    task = (
        Task.objects.filter(scenario__text__contains="viewer=").select_related("scenario", "agent1", "agent2").first()
    )
    hidden = task.scenario.text.split(">", 1)[1].split("</p>")[0]
    assert hidden not in agent_context(task_spec(task), 0)
    assert hidden not in agent_context(task_spec(task), 1)
    assert hidden in omniscient_context(task_spec(task))
