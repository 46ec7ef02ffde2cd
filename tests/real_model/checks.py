"""What the real-model tests check in what a run stored: everything a researcher relies on."""

from __future__ import annotations

import json
import re

from ..support.real_model import CONTEXT, MODEL_NAME

JUDGE_SAMPLES = 5
MAX_TOKENS = 512
# the turn limit: below the paper's 20 so that the suite fits CI; the method's phases all happen before it
MAX_TURNS = 8
# Why a dialogue may fail with this model: its answers, never the transport or the client
MODEL_REASONS = re.compile(r"no usable answer after \d+ tries|valid samples|does not fit the context")
NOT_THE_MODEL = re.compile(r"LLM server failed|HTTP [45]\d\d|transport|Traceback|Error\b")


def check_run(run: dict, server: str) -> dict[str, int]:
    """Everything a researcher relies on in what one run stored; returns counts for the overall checks."""
    where = f"{server}, run #{run['id']} ({run['variant']})"
    profiles = {p["endpoint"].rstrip("/"): p for p in run["server_profiles"]}
    assert profiles, f"{where}: no server profile was recorded"
    assert run["status"] == "finished", f"{where}: the run is {run['status']} {run['status_reason']}"
    calls_by_turn: dict[tuple[int, int], list[dict]] = {}
    for call in run["calls"]:
        calls_by_turn.setdefault((call["dialogue"], call["turn_index"]), []).append(call)
        what = f"{where}, call #{call['id']} {call['purpose']}"
        # every call is recorded with its prompt, raw answer, finish reason and the endpoint's profile
        assert call["messages"] and call["messages"][0]["content"].strip(), f"{what}: no prompt"
        assert not call["error"].startswith("transport"), f"{what}: {call['error']}"
        assert call["model"] == MODEL_NAME or not call["responses"], f"{what}: model {call['model']!r}"
        assert call["responses"], f"{what}: no raw answer ({call['error']})"
        assert len(call["finish_reasons"]) == len(call["responses"]), f"{what}: finish reasons not recorded"
        for endpoint in call["endpoint"].split(","):
            assert endpoint.rstrip("/") in profiles, f"{what}: endpoint {endpoint} has no recorded profile"
        # no call ran into the context limit unnoticed: what the server was asked for fits its context…
        sent = call["params"].get("sent", {}).get("max_tokens", call["params"]["max_tokens"])
        assert call["prompt_tokens"] / max(1, call["requests"]) + sent <= CONTEXT, f"{what}: over the context"
        # …and an answer cut off at max_tokens is never used as if it were whole
        if call["purpose"] == "rating":  # one parsed entry per sample: a cut-off sample is rejected, never used
            for reason, parsed in zip(call["finish_reasons"], call["parsed"] or [], strict=False):
                if reason == "length":
                    assert "cut off" in parsed.get("error", ""), f"{what}: a cut-off sample was used"
        elif "length" in call["finish_reasons"] and call["params"]["n"] == 1:
            assert call["parsed"] is None and "cut off" in call["error"], f"{what}: a cut-off answer was used"
    counts = {"dialogues": 0, "ratings": 0, "turns": 0, "utilities": 0}
    counts["negotiation_calls"] = sum(c["purpose"].startswith("nsi.") for c in run["calls"])
    for dialogue in run["dialogues"]:
        what = f"{where}, dialogue #{dialogue['id']} (task {dialogue['task']})"
        counts["dialogues"] += 1
        assert dialogue["status"] in {"finished", "failed"}, f"{what}: {dialogue['status']}"
        if dialogue["status"] == "failed":
            reason = dialogue["failure_reason"]
            assert MODEL_REASONS.search(reason) and not NOT_THE_MODEL.search(reason), f"{what}: failed: {reason}"
        else:
            assert dialogue["end_reason"], f"{what}: finished without an end reason"
    for turn in run["turns"]:
        what = f"{where}, dialogue #{turn['dialogue']} turn {turn['index']}"
        assert not turn["human"], f"{what}: a person's turn in a self-play run"
        counts["turns"] += 1
        if turn["forced"]:  # a leave the method imposes (a termination vote, the other left): no model wrote it
            assert (turn["action_type"], turn["branch"]) == ("leave", "forced"), f"{what}: forced, but {turn}"
            continue
        calls = [c for c in calls_by_turn.get((turn["dialogue"], turn["index"]), []) if c["parsed"] is not None]
        said = [c for c in calls if c["purpose"].startswith(("action.", "nsi.style", "nsi.say", "nsi.final"))]
        # every stored action was parsed from a model answer (nothing defaulted or invented)
        assert any(_action_of(c["parsed"]) == (turn["action_type"], turn["argument"]) for c in said), (
            f"{what}: the stored action {turn['action_type']} {turn['argument']!r} is in no parsed answer "
            f"({[c['purpose'] for c in calls]})"
        )
        # a side's utilities are assessed at one turn of the workflow and carried to its later turns
        earlier = [
            c for (d, i), cs in calls_by_turn.items() if d == turn["dialogue"] and i <= turn["index"] for c in cs
        ]
        for side in ("own_utility", "other_utility"):
            if turn[side] is not None:
                counts["utilities"] += 1
                assert any(_contains(c["parsed"], turn[side]["matters"]) for c in earlier), (
                    f"{what}: the stored {side} is in no parsed answer"
                )
    for rating in run["ratings"]:
        what = f"{where}, dialogue #{rating['dialogue']} rating after turn {rating['turn']}"
        counts["ratings"] += 1
        # every rating asked for the paper's 5 samples and got 5 back, whatever the server takes per request;
        # a sample that could not be used was asked for again (returned counts those answers too)
        calls = [c for c in calls_by_turn.get((rating["dialogue"], rating["turn"]), []) if c["purpose"] == "rating"]
        assert rating["requested"] == JUDGE_SAMPLES and calls and calls[0]["params"]["n"] == JUDGE_SAMPLES, (
            f"{what}: {rating['requested']} samples wanted, the first request asked for "
            f"{calls[0]['params']['n'] if calls else 'nothing'}"
        )
        for call in calls:
            assert len(call["responses"]) == call["params"]["n"], (
                f"{what}: call #{call['id']} asked for {call['params']['n']} samples and got {len(call['responses'])}"
            )
        assert rating["returned"] == sum(len(c["responses"]) for c in calls), f"{what}: {rating['returned']} returned"
        assert rating["returned"] == rating["valid"] + len(rating["rejected"]), f"{what}: an answer unaccounted for"
        assert rating["valid"] == len(rating["samples"]) >= 1, f"{what}: {rating['valid']} valid"
        raw = " ".join(text for c in calls for text in c["responses"])
        for sample in rating["samples"]:  # each sample is in a raw answer of the judge
            for value in _strings(sample):
                assert value in raw or json.dumps(value)[1:-1] in raw, f"{what}: {value!r} is in no raw answer"
    return counts


def _action_of(parsed) -> tuple[str, str] | None:
    if isinstance(parsed, dict) and "action_type" in parsed:
        return parsed["action_type"], parsed.get("argument", "")
    if isinstance(parsed, str):  # the negotiation workflow's style transfer: the words the agent says
        return "speak", parsed
    return None


def _contains(parsed, value) -> bool:
    """Whether value is parsed, or anywhere inside it."""
    if parsed == value:
        return True
    if isinstance(parsed, dict):
        return any(_contains(v, value) for v in parsed.values())
    if isinstance(parsed, list):
        return any(_contains(v, value) for v in parsed)
    return False


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value] if len(value) > 3 else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


EPISODE_SAMPLES = 3  # the evaluation's default (paper A.3)


def check_evaluation(facts: dict, dialogue_ids: list[int]) -> None:
    """The judges ran on every dialogue and agent; every score came from parsed judge answers, or its problem is
    named (a judge that gave nothing usable is reported, never replaced by a default)."""
    job = facts["job"]
    assert job["status"] == "done", f"evaluation #{job['id']}: {job['status']} {job['error']}"
    for metric in ("diversity", "episode"):
        covered = {(s["dialogue"], s["speaker"]) for s in facts[metric]}
        assert covered == {(d, side) for d in dialogue_ids for side in (0, 1)}, f"{metric}: {covered}"
    for score in facts["episode"]:
        what = f"SOTOPIA-EVAL of dialogue #{score['dialogue']} agent {score['speaker'] + 1}"
        assert score["requested"] == EPISODE_SAMPLES, f"{what}: {score['requested']} samples asked"
        if score["problem"]:
            assert all(v is None for v in score["scores"].values()), f"{what}: scores beside a problem"
        else:
            assert score["samples"] and all(v is not None for v in score["scores"].values()), f"{what}: {score}"
    for score in facts["relevance"]:
        what = f"S_rel of turn #{score['turn']}"
        assert (score["score"] is None) == bool(score["problem"]), f"{what}: {score}"
        assert score["score"] is None or score["samples"], f"{what}: a score without samples"
