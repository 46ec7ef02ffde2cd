from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dialogues.engine.config import RunConfig
from dialogues.engine.context import Profile, RelationshipType, TaskSpec
from dialogues.engine.state import DialogueState
from dialogues.engine.stepper import CallRecord, StepFailed, StepResult, advance
from dialogues.llm.client import OpenAIChatClient
from tests.support.llm_server import ScriptedLLMServer

TASK = TaskSpec(
    scenario="Two colleagues split the budget of a shared project.",
    relationship=RelationshipType.ACQUAINTANCE,
    agents=(
        Profile("Ana", "Ruiz", 40, "Engineer", "Woman", "She/her", "Ana builds bridges.", "Ana is direct.", "A1"),
        Profile("Ben", "Okoro", 35, "Designer", "Man", "He/him", "Ben draws.", "Ben is calm.", "B1"),
    ),
    goals=("Get 70% of the budget", "Get at least half of the budget"),
)


@pytest.fixture
def llm_server():
    with ScriptedLLMServer() as server:
        yield server


def run_dialogue(
    server: ScriptedLLMServer,
    config: RunConfig,
    *,
    task: TaskSpec = TASK,
    nsi_side: int | None = None,
    max_steps: int = 80,
    **client_options,
) -> tuple[DialogueState, list[StepResult], list[CallRecord]]:
    """Step a dialogue to the end through the real HTTP client and the test server."""

    async def main():
        client = OpenAIChatClient([server.base_url], server.model, backoff_base=0.01, **client_options)
        state = DialogueState(task=task, config=config, seed=7, nsi_side=nsi_side)
        results, calls = [], []
        try:
            for _ in range(max_steps):
                result = await advance(state, client)
                results.append(result)
                calls.extend(result.calls)
                state = result.state
                if result.finished:
                    return state, results, calls
            raise AssertionError("the dialogue did not finish")
        finally:
            await client.aclose()

    return asyncio.run(main())


def run_until_failure(server: ScriptedLLMServer, config: RunConfig, **client_options) -> StepFailed:
    async def main():
        client = OpenAIChatClient([server.base_url], server.model, backoff_base=0.01, **client_options)
        state = DialogueState(task=TASK, config=config, seed=7)
        try:
            for _ in range(80):
                result = await advance(state, client)
                state = result.state
                if result.finished:
                    raise AssertionError("expected a failure")
        except StepFailed as failure:
            return failure
        finally:
            await client.aclose()
        raise AssertionError("expected a failure")

    return asyncio.run(main())


def branch_row(state: DialogueState) -> list[str]:
    """One compact label per turn: branch, NSI step / proposal, forced."""
    labels = []
    for t in state.turns:
        label = t.branch.value
        if t.nsi_step:
            label += f":{t.nsi_step.value.split('_')[0]}"
        if t.proposal:
            label += f":{t.proposal.value.split('_')[0]}"
        if t.forced and t.is_leave:
            label = "leave!"
        elif t.is_leave:
            label = "leave"
        labels.append(label)
    return labels


Rating = Callable[[int, int], list[str]]
