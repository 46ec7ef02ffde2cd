"""Hypothesis fuzzing of everything that reads text from outside: the LLM-output parsers (actions, step ratings,
utilities, the judges) and the importers (SOTOPIA profile files, corpus records, SFT prompts). Whatever arrives,
they return a value or refuse with their own error naming the problem — never another exception, which would crash
a worker or an import job."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialogues.corpus_import import full, sft
from dialogues.corpus_import.stream import Reader
from dialogues.engine.actions import UnusableAnswer, parse_action, parse_json_object
from dialogues.engine.rating import parse_sample
from dialogues.engine.utility import parse_utility
from dialogues.library.sotopia import ImportRejected, read_profile_set
from evaluation.judges import parse_episode, parse_relevance

FUZZ = settings(deadline=None, database=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

# JSON-ish values and texts that look like model answers: fences, prefixes, nested objects, wrong types
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=30)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                      max_size=5), max_leaves=20)  # fmt: skip
KEYS = ["action_type", "argument", "score", "score_justification", "step1", "analysis", "matters", "value"]
KEYS += ["weight", "ratio", "agent_1", "agent_2", "goal", "reasoning", "believability"]
keys = st.sampled_from(KEYS)
shaped = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=6) | st.lists(inner, max_size=3),
                      max_leaves=25)  # fmt: skip


@st.composite
def answers(draw) -> str:
    body = draw(st.one_of(st.text(max_size=200), shaped.map(json.dumps), values.map(json.dumps)))
    wrap = draw(st.sampled_from(["{}", "```json\n{}\n```", "Here you go: {} thanks", "{}}}", "{{{}", "'{}'"]))
    return wrap.replace("{}", body, 1) if draw(st.booleans()) else body


@FUZZ
@given(answers())
@pytest.mark.parametrize(
    "parse",
    [parse_json_object, parse_action, parse_sample, parse_relevance, parse_episode],
    ids=["json", "action", "rating", "relevance", "sotopia-eval"],
)
def test_llm_output_parsers_return_or_refuse(parse, text):
    with contextlib.suppress(UnusableAnswer):
        parse(text)


@FUZZ
@given(shaped)
def test_the_utility_parser_returns_or_refuses(data):
    with contextlib.suppress(UnusableAnswer):
        parse_utility(data)


PROFILE_KINDS = ("agents", "scenarios", "relationships", "tasks")


@FUZZ
@given(st.dictionaries(st.sampled_from(PROFILE_KINDS), st.binary(max_size=400) | shaped.map(lambda v: json.dumps(v)
       .encode()), min_size=1, max_size=4))  # fmt: skip
def test_sotopia_profile_files_import_or_are_refused_naming_the_file(files):
    try:
        read_profile_set({kind: (f"{kind}.jsonl", data) for kind, data in files.items()})
    except ImportRejected as exc:
        assert all(p.file for p in exc.problems)


@FUZZ
@given(shaped)
def test_corpus_records_are_checked_or_refused(record):
    if not isinstance(record, dict):
        record = {"value": record}
    for check in (full.check_schema, full.check_task, full.check_dialogue):
        problems = check("f.jsonl", 3, record)
        assert all(p.line == 3 for p in problems)
    with contextlib.suppress(sft.SftProblem):
        sft.parse("f.jsonl", 3, record)


@FUZZ
@given(st.binary(max_size=600))
def test_the_record_reader_never_crashes_on_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "corpus.jsonl"
    path.write_bytes(data)
    for item in Reader(path).items():
        assert item.problem or item.value is not None
