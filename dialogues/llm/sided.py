"""SidedLLM: each side of a dialogue played by its own model (an evaluation run)."""

from __future__ import annotations

from dialogues.engine.llm import LLM, ChatRequest, ChatResponse
from dialogues.llm.profile import ServerProfile


class SidedLLM:
    """Each side of a dialogue played by its own model (an evaluation run: the agent under test against a
    reference model). Agent 1 speaks on even turns, agent 2 on odd ones; a request goes to the model of the side
    whose turn it is (the engine puts the turn in the request's meta)."""

    def __init__(self, first: LLM, second: LLM) -> None:
        self.sides = (first, second)
        self.simulated = first.simulated and second.simulated
        self.model = f"{first.model} / {second.model}"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.sides[int(request.meta.get("turn", 0)) % 2].chat(request)

    async def check(self) -> None:
        for llm in self.sides:
            await llm.check()

    async def profiles(self) -> list[ServerProfile]:
        found = []
        for llm in self.sides:
            found += await llm.profiles() if hasattr(llm, "profiles") else []
        return found
