"""sotopia's own episode evaluator as an option for SOTOPIA-EVAL (issue 29, ADR 0025).

The prompt and the seven-dimension answer schema are sotopia's, read from the installed `sotopia` package at run
time and never copied into this repository; the request goes through omega-web's own LLM client to the configured
judge, like every judgement. sotopia cannot share omega-web's virtualenv (its dependencies need older rich, redis,
click and typer than constraints.txt pins), so it lives in an environment of its own (`make sotopia`, the
`[sotopia]` extra of pyproject.toml) and `sotopia_side.py` runs there as a subprocess: given episodes, it returns
the prompts sotopia's `EpisodeLLMEvaluator` writes for them, the answer schema and the package's version.

The prompt version (results are kept per judge model and prompt version) is a digest of the package's version, its
answer schema and the prompt it writes for a fixed probe episode: another sotopia release that changes either gets
a new version, and its scores sit beside the old ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from dialogues.engine.actions import UnusableAnswer, parse_json_object
from dialogues.engine.context import ENVIRONMENT, full_background, render_for
from dialogues.engine.rating import score_schema
from evaluation.judges import DIMENSIONS, agent_scores

SIDE_SCRIPT = Path(__file__).resolve().parent / "sotopia_side.py"
TIMEOUT_SECONDS = 300  # a chunk of 100 dialogues renders in a few seconds; importing sotopia takes about three
AGENT_KEYS = ("agent_1", "agent_2")
# A fixed episode whose prompt, with the schema and the package's version, names the prompt version.
PROBE_EPISODE: dict[str, Any] = {
    "scenario": "Two neighbours decide who waters the shared garden this week.",
    "names": ["Alex Moreau", "Sam Okafor"],
    "backgrounds": ["Alex is a nurse.", "Sam is a teacher."],
    "goals": ["Share the watering fairly", "Skip the watering this week"],
    "actions": [[0, "speak", "Could we split the week?"], [1, "leave", ""]],
}


class SotopiaUnavailable(RuntimeError):
    """sotopia's evaluator cannot be used here: the reason says what is missing and how to get it."""


@dataclass(frozen=True)
class Package:
    """What the installed sotopia says: its version, its answer schema, and the prompt version derived from them."""

    sotopia: str
    schema: dict[str, Any]
    dimensions: dict[str, str]  # dimension -> its description in sotopia's schema
    prompt_version: str


def interpreter() -> Path:
    return Path(settings.OMEGA_SOTOPIA_PYTHON)


def unavailable_reason() -> str:
    """Why sotopia's evaluator cannot run, or "" (only checks that its environment exists: cheap, for pages)."""
    path = interpreter()
    if not path.is_file() or not os.access(path, os.X_OK):
        return (
            f"sotopia's evaluator is not installed: no Python at {path} (OMEGA_SOTOPIA_PYTHON). "
            "`make sotopia` builds its environment (docs/user-guide.md, Evaluation)."
        )
    return ""


def _run_side(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    reason = unavailable_reason()
    if reason:
        raise SotopiaUnavailable(reason)
    # Only what it needs: no API keys or database URLs reach sotopia or litellm.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm reads its price list from the package, not the network
        "SOTOPIA_STORAGE_BACKEND": "local",  # sotopia would otherwise connect to Redis on import
        "PYTHONIOENCODING": "utf-8",
    }
    try:
        done = subprocess.run(
            [str(interpreter()), str(SIDE_SCRIPT)],
            input=json.dumps({"episodes": episodes}),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=TIMEOUT_SECONDS,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SotopiaUnavailable(f"sotopia's evaluator did not run: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-5:]
        raise SotopiaUnavailable(
            f"sotopia's evaluator failed (exit {done.returncode}) in {interpreter()}: " + " | ".join(tail)
        )
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise SotopiaUnavailable(f"sotopia's evaluator wrote no JSON: {done.stdout[:200]!r}") from exc
    if len(result.get("prompts", [])) != len(episodes):
        raise SotopiaUnavailable("sotopia's evaluator did not write one prompt per episode")
    return result


def _package(result: dict[str, Any]) -> Package:
    dimensions = result["dimensions"]
    ours = [d.key for d in DIMENSIONS]
    if sorted(dimensions) != sorted(ours):
        raise SotopiaUnavailable(
            f"sotopia {result['sotopia']} scores the dimensions {sorted(dimensions)}, not SOTOPIA-EVAL's seven "
            f"({', '.join(ours)}): this version cannot stand in for SOTOPIA-EVAL"
        )
    digest = json.dumps(
        {"sotopia": result["sotopia"], "schema": result["schema"], "probe": result["prompts"][0]}, sort_keys=True
    )
    version = hashlib.sha256(digest.encode("utf-8")).hexdigest()[:12]
    return Package(result["sotopia"], result["schema"], dimensions, version)


def describe() -> Package:
    """The installed sotopia's version, schema and prompt version (one subprocess, about three seconds)."""
    return _package(_run_side([PROBE_EPISODE]))


def episode(spec: Any, turns: list[tuple[int, str, str]]) -> dict[str, Any]:
    """An episode as sotopia's environment sees it, from a task spec and (speaker, action type, text) turns: the
    environment's view of the scenario and goals, both full backgrounds (secrets included, as its judge sees them)."""
    return {
        "scenario": render_for(spec.scenario, ENVIRONMENT),
        "names": list(spec.names),
        "backgrounds": [full_background(profile) for profile in spec.agents],
        "goals": [render_for(goal, ENVIRONMENT) for goal in spec.goals],
        "actions": [[speaker, action_type, text] for speaker, action_type, text in turns],
    }


def prompts(episodes: list[dict[str, Any]], expected_version: str | None = None) -> tuple[Package, list[str]]:
    """sotopia's prompt for each episode, and the package it came from. With `expected_version`, a package whose
    prompt version differs (sotopia was upgraded since the job was created) is refused."""
    result = _run_side([PROBE_EPISODE, *episodes])
    package = _package(result)
    if expected_version is not None and package.prompt_version != expected_version:
        raise SotopiaUnavailable(
            f"sotopia's evaluator changed since this job was created (prompt version {expected_version}, now "
            f"{package.prompt_version}, sotopia {package.sotopia}): start a new evaluation"
        )
    return package, result["prompts"][1:]


def constraint_schema(package: Package) -> dict[str, Any]:
    """The structured-output schema sent with sotopia's prompt: sotopia's own answer schema (each dimension a
    [reasoning, score] pair with sotopia's description), with its open `evaluations` map narrowed to the two keys
    its prompt asks for and each score to its dimension's range, which sotopia checks in Python after the answer
    (its JSON schema cannot say so). A server that honours it cannot answer outside what the parser accepts."""
    definitions = package.schema.get("$defs", {})
    dims_schema = next(
        (d for d in definitions.values() if set(d.get("properties", {})) == {dim.key for dim in DIMENSIONS}), None
    )
    if dims_schema is None:
        raise SotopiaUnavailable(f"sotopia {package.sotopia}'s answer schema has no seven-dimension object")
    properties = {}
    for dim in DIMENSIONS:
        field = dict(dims_schema["properties"][dim.key])
        items = field.get("prefixItems")
        if not (isinstance(items, list) and len(items) == 2):
            raise SotopiaUnavailable(f"sotopia {package.sotopia}'s {dim.key} is not a [reasoning, score] pair")
        field["prefixItems"] = [items[0], {**items[1], **score_schema(dim.low, dim.high)}]
        properties[dim.key] = field
    agent = {
        "type": "object",
        "properties": properties,
        "required": [d.key for d in DIMENSIONS],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "evaluations": {
                "type": "object",
                "properties": {key: agent for key in AGENT_KEYS},
                "required": list(AGENT_KEYS),
                "additionalProperties": False,
            }
        },
        "required": ["evaluations"],
    }


def parse_answer(text: str | None) -> list[dict[str, dict[str, Any]]]:
    """sotopia's answer {"evaluations": {"agent_1": {dimension: [reasoning, score]}, "agent_2": …}} as
    [agent 1, agent 2], each {dimension label: {"score", "reasoning"}}, every score an integer in range. Like
    sotopia's own parser, an answer that wraps it in "properties" (a model echoing the schema) is read inside."""
    data = parse_json_object(text)
    if "evaluations" not in data and isinstance(data.get("properties"), dict):
        data = data["properties"]
    evaluations = data.get("evaluations")
    if not isinstance(evaluations, dict):
        raise UnusableAnswer("no evaluations object")
    return [agent_scores(evaluations.get(key), f"evaluations.{key}") for key in AGENT_KEYS]
