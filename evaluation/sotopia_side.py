"""Runs inside sotopia's own environment (`make sotopia`, ADR 0025), never in omega-web's: it imports only the
standard library and the installed `sotopia` package, and is started by `evaluation/sotopia_evaluator.py` as
`python sotopia_side.py` with JSON on standard input.

Input: {"episodes": [{"scenario", "names": [a, b], "backgrounds": [a, b], "goals": [a, b],
"actions": [[speaker 0|1, action_type, argument], …]}, …]}.
Output (standard output, one JSON object): {"sotopia": the package's version, "schema": the JSON schema of the
seven-dimension answer (EvaluationForAgents[SotopiaDimensions]), "dimensions": {name: description}, "prompts":
[the prompt sotopia's episode evaluator writes for each episode]}.

Each prompt is sotopia's own: the episode is built as its environment builds one (the background as the
environment's first message, then "Turn #n" and both agents' actions per turn, the one not in turn doing nothing)
and handed to `EpisodeLLMEvaluator`, which renders its template with the history and the answer schema; the
request it would send through litellm is caught before it leaves the process, so nothing goes to the network and
the prompt is taken exactly as sotopia wrote it. Nothing of sotopia's text is kept in omega-web's repository.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile


class _Captured(Exception):
    """Raised to stop sotopia's request once its prompt is written."""


def _episode_messages(episode: dict, classes: dict) -> list:
    background = classes["ScriptBackground"](
        scenario=episode["scenario"],
        agent_names=list(episode["names"]),
        agent_backgrounds=list(episode["backgrounds"]),
        agent_goals=list(episode["goals"]),
    )
    messages = [("Environment", background)]
    names = episode["names"]
    for turn, (speaker, action_type, argument) in enumerate(episode["actions"], start=1):
        messages.append(("Environment", classes["SimpleMessage"](message=f"Turn #{turn}")))
        for side, name in enumerate(names):
            if side == speaker:
                action = classes["AgentAction"](action_type=action_type, argument=argument)
            else:
                action = classes["AgentAction"](action_type="none", argument="")
            messages.append((name, action))
    return messages


def main() -> int:
    request = json.load(sys.stdin)
    out = sys.stdout
    sys.stdout = sys.stderr  # sotopia prints on import and when a request fails: keep standard output for us
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no price list from the network
    os.environ["SOTOPIA_STORAGE_BACKEND"] = "local"  # no Redis: sotopia's local JSON store, in a scratch folder
    with tempfile.TemporaryDirectory(prefix="omega-sotopia-") as home:
        os.environ["HOME"] = home
        from importlib.metadata import version

        from sotopia.database import SotopiaDimensions
        from sotopia.envs import evaluators
        from sotopia.generation_utils import generate
        from sotopia.messages import AgentAction, ScriptBackground, SimpleMessage

        classes = {"ScriptBackground": ScriptBackground, "AgentAction": AgentAction, "SimpleMessage": SimpleMessage}
        answer_model = evaluators.EvaluationForAgents[SotopiaDimensions]
        captured: list[str] = []

        async def capture(**kwargs):  # stands in for litellm.acompletion inside sotopia
            captured.append(kwargs["messages"][-1]["content"])
            raise _Captured

        generate.acompletion = capture
        evaluator = evaluators.EpisodeLLMEvaluator(
            model_name="custom/omega-web@http://127.0.0.1:9", response_format_class=answer_model
        )
        prompts = []
        for episode in request["episodes"]:
            before = len(captured)
            asyncio.run(evaluator.__acall__(turn_number=-1, messages=_episode_messages(episode, classes)))
            if len(captured) != before + 1:
                raise SystemExit("sotopia's evaluator did not write exactly one request for an episode")
            prompts.append(captured[-1])
        result = {
            "sotopia": version("sotopia"),
            "schema": answer_model.model_json_schema(),
            "dimensions": {name: f.description or "" for name, f in SotopiaDimensions.model_fields.items()},
            "prompts": prompts,
        }
    json.dump(result, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
