"""Reading actions and JSON from model answers: fenced, in prose, single-quoted; garbage is unusable."""

from __future__ import annotations

import pytest

from dialogues.engine.actions import (
    ACTION_JSON_SCHEMA,
    Action,
    ActionType,
    UnusableAnswer,
    parse_action,
    parse_json_object,
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"action_type": "speak", "argument": "Hello {friend}"}', id="plain"),
        pytest.param('```json\n{"action_type": "speak", "argument": "Hello {friend}"}\n```', id="fenced"),
        pytest.param("Sure. {'action_type': 'speak', 'argument': 'Hello {friend}'} Hope it helps", id="python-dict"),
        pytest.param('Here you go:\n{"action_type": "Speak", "argument": "  Hello {friend} "}', id="prose-case"),
    ],
)
def test_actions_are_found(text):
    assert parse_action(text) == Action(ActionType.SPEAK, "Hello {friend}")


def test_apostrophes_inside_single_quoted_dicts():
    text = "{'action_type': 'speak', 'argument': \"I don't think so, it's late\"}"
    assert parse_action(text).argument == "I don't think so, it's late"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("I would rather not answer in JSON.", "no JSON object", id="prose"),
        pytest.param('{"action": "speak"}', "without", id="wrong-keys"),
        pytest.param('{"action_type": "dance", "argument": "x"}', "unknown action_type", id="unknown-type"),
        pytest.param('{"action_type": "speak", "argument": ""}', "empty argument", id="empty-speech"),
        pytest.param('{"action_type": "speak", "argument": 42}', "not a string", id="argument-type"),
        pytest.param('[{"action_type": "speak"}]', "without argument", id="inner-object-still-checked"),
    ],
)
def test_unusable_answers(text, message):
    with pytest.raises(UnusableAnswer, match=message):
        parse_action(text)


def test_leave_and_none_need_no_argument():
    assert parse_action('{"action_type": "leave", "argument": ""}').action_type == ActionType.LEAVE
    assert parse_action('{"action_type": "none", "argument": null}').argument == ""


def test_transcript_lines_follow_sotopia():
    assert Action(ActionType.SPEAK, "Hi").transcript_line("Ann Lee") == 'Ann Lee said: "Hi"'
    assert Action(ActionType.NON_VERBAL, "nods").transcript_line("Ann Lee") == "Ann Lee [non-verbal communication] nods"
    assert Action(ActionType.ACTION, "sits").transcript_line("Ann Lee") == "Ann Lee [action] sits"
    assert Action(ActionType.NONE).transcript_line("Ann Lee") == "Ann Lee did nothing"
    assert Action(ActionType.LEAVE).transcript_line("Ann Lee") == "Ann Lee left the conversation"


def test_nested_objects_and_huge_input():
    assert parse_json_object('x {"a": {"b": [1, {"c": 2}]}} y') == {"a": {"b": [1, {"c": 2}]}}
    with pytest.raises(UnusableAnswer):
        parse_json_object("{" * 10000)


@pytest.mark.parametrize("action_type", list(ActionType), ids=str)
def test_the_action_schema_asks_for_words_where_the_parser_needs_them(action_type):
    """The schema sent with every action call says what parse_action requires, so a grammar (llama.cpp's servers)
    can enforce it: an empty argument is allowed exactly where the parser allows it."""
    (shape,) = [s for s in ACTION_JSON_SCHEMA["anyOf"] if action_type.value in s["properties"]["action_type"]["enum"]]
    empty_allowed = shape["properties"]["argument"].get("minLength", 0) == 0
    answer = f'{{"action_type": "{action_type.value}", "argument": ""}}'
    try:
        parse_action(answer)
        parsed = True
    except UnusableAnswer:
        parsed = False
    assert empty_allowed is parsed
    assert ACTION_JSON_SCHEMA["type"] == "object" and shape["required"] == ["action_type", "argument"]
