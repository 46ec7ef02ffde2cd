"""Check omega-web's full-fidelity records (`omega-web/full/2` and `/3`: task lines, then dialogue lines) before
anything is written. Every problem names the file, the line and the field (`turns[3].rating.goal_c`)."""

from __future__ import annotations

from typing import Any

from dialogues.annotation.models import EPISODE_DIMENSIONS, RELEVANCE_SCALE
from dialogues.corpora.data import AGENT_FIELDS, SCENARIO_FIELDS
from dialogues.engine.actions import ActionType
from dialogues.engine.branches import Branch
from dialogues.library.sotopia import RELATIONSHIP_CODES, Problem, type_name

SCHEMA_PREFIX = "omega-web/full/"
SCHEMAS = {"omega-web/full/2", "omega-web/full/3"}  # 3 adds judge_ratings and episode_ratings
BRANCHES = {b.value for b in Branch}
ACTION_TYPES = {t.value for t in ActionType}
NOT_TEXT = {"age", "moral_values", "schwartz_personal_values", "partial"}  # checked on their own
AGENT_TEXT = tuple(name for name in AGENT_FIELDS if name not in NOT_TEXT)
SCENARIO_TEXT = tuple(name for name in SCENARIO_FIELDS if name not in NOT_TEXT)


def is_full(record: dict[str, Any]) -> bool:
    return isinstance(record.get("schema"), str) and record["schema"].startswith(SCHEMA_PREFIX)


class _Check:
    def __init__(self, file: str, line: int) -> None:
        self.file, self.line = file, line
        self.problems: list[Problem] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.file, self.line, where, message))

    def get(self, row: Any, key: str, where: str, kinds: tuple[type, ...], *, optional: bool = False) -> Any:
        """row[key] if it is one of `kinds` (None allowed when None is in kinds); reports and returns None if not."""
        path = f"{where}.{key}" if where else key
        if not isinstance(row, dict):
            return None
        if key not in row:
            if not optional:
                self.fail(path, "missing field")
            return None
        value = row[key]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if value is None and type(None) in kinds:
            return None
        if not ok:
            names = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds if k is not type(None))
            self.fail(path, f"expected {names}, got {type_name(value)}")
            return None
        return value


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object",
               list: "a list"}  # fmt: skip
NUMBER = (int, float)


def check_schema(file: str, line: int, record: dict[str, Any]) -> list[Problem]:
    if record.get("schema") not in SCHEMAS:
        readable = ", ".join(sorted(SCHEMAS))
        return [
            Problem(file, line, "schema", f"unknown schema {record.get('schema')!r} (this version reads {readable})")
        ]
    if record.get("type") not in ("task", "dialogue"):
        return [Problem(file, line, "type", f"expected 'task' or 'dialogue', got {record.get('type')!r}")]
    return []


def check_task(file: str, line: int, record: dict[str, Any]) -> list[Problem]:
    c = _Check(file, line)
    external_id = c.get(record, "external_id", "", (str,))
    if external_id is not None and not external_id.strip():
        c.fail("external_id", "must not be empty")
    for key in ("codename", "source", "scenario", "relationship"):
        c.get(record, key, "", (str,))
    if c.get(record, "split", "", (str,)) not in (None, "train", "eval"):
        c.fail("split", f"expected 'train' or 'eval', got {record['split']!r}")
    c.get(record, "hard", "", (bool,))
    c.get(record, "contexts", "", (dict,), optional=True)
    profiles = c.get(record, "profiles", "", (dict,))
    if profiles is not None:
        scenario = c.get(profiles, "scenario", "profiles", (dict,))
        if scenario is not None:
            for key in SCENARIO_TEXT:
                c.get(scenario, key, "profiles.scenario", (str,))
            partial = c.get(scenario, "partial", "profiles.scenario", (bool,), optional=True)
            if not partial:
                for key in ("agent1_goal", "agent2_goal", "text"):
                    if isinstance(scenario.get(key), str) and not scenario[key].strip():
                        c.fail(f"profiles.scenario.{key}", "must not be empty")
                code = scenario.get("relationship")
                if isinstance(code, str) and code not in RELATIONSHIP_CODES:
                    c.fail("profiles.scenario.relationship", f"unknown relationship code {scenario['relationship']!r}")
        agents = c.get(profiles, "agents", "profiles", (list,))
        if agents is not None and len(agents) != 2:
            c.fail("profiles.agents", f"a task needs exactly two agents, got {len(agents)}")
        for i, agent in enumerate(agents or []):
            where = f"profiles.agents[{i}]"
            if not isinstance(agent, dict):
                c.fail(where, f"expected an object, got {type_name(agent)}")
                continue
            for key in AGENT_TEXT:
                c.get(agent, key, where, (str,))
            age = c.get(agent, "age", where, (int, type(None)))
            if isinstance(age, int) and not 0 <= age <= 150:
                c.fail(f"{where}.age", f"must be between 0 and 150, got {age}")
            for key in ("moral_values", "schwartz_personal_values"):
                values = c.get(agent, key, where, (list,))
                if values is not None and not all(isinstance(v, str) for v in values):
                    c.fail(f"{where}.{key}", "expected a list of strings")
            c.get(agent, "partial", where, (bool,), optional=True)
    if not c.problems:
        _check_task_agrees_with_profiles(c, record)
    return c.problems


def _check_task_agrees_with_profiles(c: _Check, record: dict[str, Any]) -> None:
    """The task's summary fields are derived from its profiles: an edited copy that disagrees is refused."""
    scenario, agents = record["profiles"]["scenario"], record["profiles"]["agents"]
    expected = {
        "codename": scenario["codename"],
        "scenario": scenario["text"],
        "relationship": scenario["relationship"],
    }
    for key, value in expected.items():
        if record[key] != value:
            c.fail(key, f"differs from profiles.scenario ({value!r})")
    listed = record.get("agents")
    if not isinstance(listed, list) or len(listed) != 2 or not all(isinstance(a, dict) for a in listed):
        c.fail("agents", "expected a list of two objects")
        return
    for i, (entry, agent) in enumerate(zip(listed, agents, strict=True)):
        goal = scenario[f"agent{i + 1}_goal"]
        if entry.get("external_id") != agent["external_id"]:
            c.fail(f"agents[{i}].external_id", f"differs from profiles.agents[{i}] ({agent['external_id']!r})")
        if entry.get("goal") != goal:
            c.fail(f"agents[{i}].goal", f"differs from profiles.scenario.agent{i + 1}_goal ({goal!r})")


def check_dialogue(file: str, line: int, record: dict[str, Any]) -> list[Problem]:
    c = _Check(file, line)
    key = c.get(record, "key", "", (str,))
    if key is not None and not key.strip():
        c.fail("key", "must not be empty")
    c.get(record, "task", "", (str,))
    run = c.get(record, "run", "", (dict,))
    if run is not None:
        for name in ("key", "name", "variant", "model", "prompt_set_version"):
            c.get(run, name, "run", (str,))
        c.get(run, "simulated", "run", (bool,))
    attempt = c.get(record, "attempt", "", (int,))
    if isinstance(attempt, int) and not 0 <= attempt < 32768:
        c.fail("attempt", f"must be between 0 and 32767, got {attempt}")
    c.get(record, "seed", "", (int,))
    for name in ("simulated", "kept", "nsi_used"):
        c.get(record, name, "", (bool,))
    c.get(record, "filter_passed", "", (bool, type(None)))
    for name in ("final_goal_c", "final_goal_p"):
        c.get(record, name, "", (*NUMBER, type(None)))
    c.get(record, "end_reason", "", (str,))
    c.get(record, "filter_note", "", (str,))
    c.get(record, "source", "", (dict, type(None)), optional=True)
    turns = c.get(record, "turns", "", (list,))
    for i, turn in enumerate(turns or []):
        _check_turn(c, f"turns[{i}]", i, turn)
    for i, decision in enumerate(c.get(record, "decisions", "", (list,)) or []):
        _check_decision(c, f"decisions[{i}]", decision, "annotator")
    for i, rating in enumerate(c.get(record, "episode_ratings", "", (list,), optional=True) or []):
        _check_episode_rating(c, f"episode_ratings[{i}]", rating)
    adjudication = c.get(record, "adjudication", "", (dict, type(None)))
    if adjudication is not None:
        _check_decision(c, "adjudication", adjudication, "curator")
    for i, call in enumerate(c.get(record, "llm_calls", "", (list,), optional=True) or []):
        where = f"llm_calls[{i}]"
        if not isinstance(call, dict):
            c.fail(where, f"expected an object, got {type_name(call)}")
            continue
        c.get(call, "turn_index", where, (int,))
        for name in ("purpose", "error", "model"):
            c.get(call, name, where, (str,))
        c.get(call, "messages", where, (list,))
        c.get(call, "params", where, (dict,))
        c.get(call, "responses", where, (list,))
        reasons = c.get(call, "finish_reasons", where, (list,), optional=True)
        if reasons is not None and not all(isinstance(r, str) for r in reasons):
            c.fail(f"{where}.finish_reasons", "expected a list of strings")
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            cached = name == "cached_tokens"  # as the server reported them (ADR 0028): absent or null when it did not
            tokens = c.get(call, name, where, (int, type(None)) if cached else (int,), optional=cached)
            if isinstance(tokens, int) and tokens < 0:
                c.fail(f"{where}.{name}", "must not be negative")
    return c.problems


def _check_turn(c: _Check, where: str, position: int, turn: Any) -> None:
    if not isinstance(turn, dict):
        c.fail(where, f"expected an object, got {type_name(turn)}")
        return
    index = c.get(turn, "index", where, (int,))
    if isinstance(index, int) and index != position:
        c.fail(f"{where}.index", f"turns must be numbered 0, 1, 2, … in order: expected {position}, got {index}")
    if c.get(turn, "speaker", where, (int,)) not in (None, 0, 1):
        c.fail(f"{where}.speaker", f"expected 0 or 1, got {turn['speaker']!r}")
    if c.get(turn, "action_type", where, (str,)) not in (None, *ACTION_TYPES):
        c.fail(f"{where}.action_type", f"unknown action type {turn['action_type']!r}")
    if c.get(turn, "branch", where, (str,)) not in (None, *BRANCHES):
        c.fail(f"{where}.branch", f"unknown branch {turn['branch']!r}")
    for name in ("argument", "correction_reason", "reason", "nsi_step", "proposal", "draft"):
        c.get(turn, name, where, (str,))
    c.get(turn, "corrected", where, (str, type(None)))
    for name in ("forced", "human"):
        c.get(turn, name, where, (bool,))
    for name in ("own_utility", "other_utility"):
        c.get(turn, name, where, (dict, type(None)))
    c.get(turn, "extra", where, (dict, type(None)), optional=True)
    rating = c.get(turn, "rating", where, (dict, type(None)))
    if rating is not None:
        r = f"{where}.rating"
        for name in ("goal_c", "goal_p"):
            value = c.get(rating, name, r, NUMBER)
            if value is not None and not 0 <= value <= 10:
                c.fail(f"{r}.{name}", f"must be between 0 and 10, got {value}")
        for name in ("terminate", "closing"):
            c.get(rating, name, r, (bool,))
        requested, valid = c.get(rating, "requested", r, (int,)), c.get(rating, "valid", r, (int,))
        if isinstance(requested, int) and isinstance(valid, int) and not 0 <= valid <= requested:
            c.fail(f"{r}.valid", f"must be between 0 and requested ({requested}), got {valid}")
        c.get(rating, "samples", r, (list,))
        c.get(rating, "rejected", r, (list,))
    for i, mark in enumerate(c.get(turn, "annotations", where, (list,)) or []):
        m = f"{where}.annotations[{i}]"
        if not isinstance(mark, dict):
            c.fail(m, f"expected an object, got {type_name(mark)}")
            continue
        c.get(mark, "annotator", m, (str,))
        labels = c.get(mark, "labels", m, (list,))
        if labels is not None and not all(isinstance(label, str) for label in labels):
            c.fail(f"{m}.labels", "expected a list of strings")
        quality = c.get(mark, "quality", m, (int, type(None)))
        if isinstance(quality, int) and not 1 <= quality <= 5:
            c.fail(f"{m}.quality", f"must be between 1 and 5, got {quality}")
        for name in ("note", "corrected_text", "correction_reason"):
            c.get(mark, name, m, (str,))
    for i, rating in enumerate(c.get(turn, "judge_ratings", where, (list,), optional=True) or []):
        _check_judge_rating(c, f"{where}.judge_ratings[{i}]", rating)


def _check_judge_rating(c: _Check, where: str, rating: Any) -> None:
    if not isinstance(rating, dict):
        c.fail(where, f"expected an object, got {type_name(rating)}")
        return
    c.get(rating, "annotator", where, (str,))
    for step, high in (("step1", 10), ("step2", 10), ("step3", 10), ("step4", 10), ("step5", 1)):
        value = c.get(rating, step, where, (int, type(None)))
        if isinstance(value, int) and not 0 <= value <= high:
            c.fail(f"{where}.{step}", f"must be between 0 and {high}, got {value}")
    relevance = c.get(rating, "relevance", where, (*NUMBER, type(None)))
    if relevance is not None and isinstance(relevance, NUMBER) and relevance not in RELEVANCE_SCALE:
        c.fail(f"{where}.relevance", f"must be one of -1, -0.5, 0, 0.5, 1, got {relevance}")
    c.get(rating, "rated_at", where, (str, type(None)))


def _check_episode_rating(c: _Check, where: str, rating: Any) -> None:
    if not isinstance(rating, dict):
        c.fail(where, f"expected an object, got {type_name(rating)}")
        return
    c.get(rating, "annotator", where, (str,))
    if c.get(rating, "speaker", where, (int,)) not in (None, 0, 1):
        c.fail(f"{where}.speaker", f"expected 0 or 1, got {rating['speaker']!r}")
    scores = c.get(rating, "scores", where, (dict,))
    ranges = {label: (low, high) for label, low, high in EPISODE_DIMENSIONS}
    for label, value in (scores or {}).items():
        if label not in ranges:
            c.fail(f"{where}.scores", f"unknown dimension {label!r} (one of {', '.join(ranges)})")
        elif (
            isinstance(value, bool)
            or not isinstance(value, NUMBER)
            or not ranges[label][0] <= value <= ranges[label][1]
        ):
            c.fail(
                f"{where}.scores.{label}",
                f"must be a number from {ranges[label][0]} to {ranges[label][1]}, got {value!r}",
            )
    c.get(rating, "rated_at", where, (str, type(None)))


def _check_decision(c: _Check, where: str, decision: Any, who: str) -> None:
    if not isinstance(decision, dict):
        c.fail(where, f"expected an object, got {type_name(decision)}")
        return
    c.get(decision, who, where, (str, type(None)))
    if c.get(decision, "decision", where, (str,)) not in (None, "", "accept", "reject", "needs_review"):
        c.fail(f"{where}.decision", f"unknown decision {decision['decision']!r}")
    c.get(decision, "note", where, (str,))
