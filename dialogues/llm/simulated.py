"""The simulated expert: an offline, deterministic stand-in for the LLM, for demos and tests without a GPU.

It answers every purpose the engine asks for with valid output, and its judge follows one of a few
trajectories chosen per dialogue by seed, so that every branch of the method is exercised: native turns, simple
strategy injection, the full negotiation workflow with present / revise / confirm and its exit, termination
votes, voluntary leaves, failed filters and regenerated attempts, and now and then a workflow cut off by the
turn limit. Hard tasks deadlock: goal_c stalls near 7 after turn 5, so DSI starts the workflow at turn 6.

Everything it writes is labelled simulated by the caller (Dialogue.simulated); its text is recognisably plain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from typing import Any

from dialogues.engine.llm import ChatRequest, ChatResponse

MODEL_NAME = "simulated-expert"

# trajectories: target (goal_c, goal_p) after a native or SSI turn, by turns since the native start
PROFILES = ("smooth", "perspective", "low_but_hopeful", "drift")


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _short_goal(goal: str) -> str:
    text = re.sub(r"\(.*", "", goal).strip().rstrip(".")
    words = text.split()
    text = " ".join(words[:14])
    return text[:1].lower() + text[1:] if text else "what I came here for"


class SimulatedExpert:
    simulated = True

    def __init__(self, *, latency_ms: float = 0.0) -> None:
        self.model = MODEL_NAME
        self.latency_ms = latency_ms

    async def check(self) -> None:
        return None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        meta = request.meta
        prompt = request.messages[0]["content"]  # the prompt (a re-ask adds the answer and a repair turn after it)
        texts = [
            self._answer(request.purpose, {**meta, "samples": request.n}, prompt, sample) for sample in range(request.n)
        ]
        return ChatResponse(
            texts=texts,
            prompt_tokens=len(prompt) // 4,
            completion_tokens=sum(len(t) // 4 for t in texts),
            latency_ms=self.latency_ms,
            endpoint="simulated",
            model=self.model,
        )

    # --- the dialogue's fate ------------------------------------------------------------------------------

    @staticmethod
    def _profile(meta: dict[str, Any]) -> str:
        if meta.get("hard"):
            return "deadlock"
        return _rng("profile", meta.get("seed")).choice(PROFILES)

    @staticmethod
    def _luck(meta: dict[str, Any], name: str) -> float:
        return _rng("luck", name, meta.get("seed")).random()

    def _targets(self, meta: dict[str, Any]) -> tuple[float, float, bool]:
        """(goal_c, goal_p, vote to end) for the rating asked for."""
        profile = self._profile(meta)
        rated = meta.get("rated") or {}
        turn = int(meta.get("rated_turn", meta.get("turn", 0)))
        since = turn - 5
        if rated.get("closing"):
            return (7.2, 7.4, True) if profile == "deadlock" else (8.2, 8.3, True)
        if rated.get("nsi_step") == "exit_confirm":
            return 8.33, 8.83, False
        if meta.get("exit") and rated.get("branch") == "NSC":  # the native turn after the agreement
            final = 8.0 if self._luck(meta, "exit") < 0.75 else 7.67
            return final, final, True
        if profile == "deadlock":  # the native start ends in a deadlock, and plain turns do not break it
            return 7.0, 7.17, since >= 4
        if profile == "smooth":
            return min(9.5, 8.6 + 0.1 * since), min(9.8, 9.0 + 0.1 * since), since >= 2
        if profile == "perspective":
            path = [(7.8, 8.2), (8.1, 8.4), (8.6, 8.9), (8.7, 9.0)]
            c, p = path[min(since, len(path) - 1)]
            return c, p, since >= 3
        if profile == "low_but_hopeful":
            path = [(7.4, 8.6), (8.2, 8.4), (8.6, 8.8), (8.7, 8.9)]
            c, p = path[min(since, len(path) - 1)]
            return c, p, since >= 3
        return 8.2, 8.3, since >= 3  # drift: never quite good enough; the filter asks for another attempt

    # --- answers by purpose ------------------------------------------------------------------------------

    def _answer(self, purpose: str, meta: dict[str, Any], prompt: str, sample: int) -> str:
        if purpose == "eval.relevance":
            return self._relevance(meta)
        if purpose == "eval.sotopia":
            return self._episode(meta, sample)
        if purpose == "eval.sotopia.package":  # sotopia's evaluator's prompt: its answer form
            return self._episode_as_sotopia(meta, sample)
        rng = _rng(purpose, meta.get("seed"), meta.get("turn"), meta.get("attempt"), sample)
        names = meta.get("names") or ["Agent One", "Agent Two"]
        speaker = int(meta.get("turn", 0)) % 2
        me, other = names[speaker], names[1 - speaker]
        goal = _short_goal(self._own_goal(prompt, me))
        if purpose == "rating":
            return self._rating(meta, names, sample)
        if purpose in {"action.native", "action.ssi"}:
            return json.dumps(self._action(purpose, meta, rng, me, other, goal))
        if purpose in {"nsi.own_utility", "nsi.other_utility"}:
            who = goal if purpose == "nsi.own_utility" else f"what {other.split()[0]} is after"
            return json.dumps(self._utility(rng, who, other))
        if purpose == "nsi.interests":
            text = (
                f"What matters most to me is that I {goal}. I also care about keeping things good between us, "
                f"{other.split()[0]}, and about being recognised for the effort I put in."
            )
            return json.dumps({"action_type": "speak", "argument": text})
        if purpose == "nsi.difference":
            text = (
                f"We differ on the main point: I want to {goal}, and you see it differently. But some things "
                "cost me little and mean a lot to you, like flexibility on timing and public credit, and "
                "some things you could give easily mean a lot to me."
            )
            return json.dumps({"action_type": "speak", "argument": text})
        if purpose == "nsi.proposal_draft":
            return json.dumps(
                {
                    "thought": "Keep the core, compensate with benefits outside the conflict.",
                    "draft": f"I {goal}; in return I offer public credit and flexible timing.",
                }
            )
        if purpose == "nsi.update":
            return json.dumps(
                {
                    "thought": "Their last proposal moves toward a complementary split.",
                    "own_matters": self._utility(rng, goal, other)["matters"],
                    "other_matters": self._utility(rng, f"what {other.split()[0]} is after", other)["matters"],
                    "draft": "Adjust the details so both of us gain: credit, timing and a follow-up.",
                }
            )
        if purpose == "nsi.proposal":
            return json.dumps(self._proposal(meta, other, goal))
        if purpose == "nsi.style_transfer":
            draft = self._draft_in(prompt)
            opener = rng.choice(["Honestly,", "You know,", "Look,", "Well,"])
            keep_capital = draft.split(" ", 1)[0] in {"I", "I'm", "I've"}
            return f"{opener} {draft if keep_capital else draft[:1].lower() + draft[1:]}"
        if purpose == "nsi.confirm":
            return json.dumps(
                {
                    "proposal_type": "confirm_proposal",
                    "action_type": "speak",
                    "argument": f"Thank you, {other.split()[0]}. I accept the agreement: we both come "
                    "out ahead, and I am glad we found it together.",
                }
            )
        raise ValueError(f"the simulated expert does not know the purpose {purpose!r}")

    # --- the simulated judges of evaluation -----------------------------------------------------------------

    @staticmethod
    def _relevance(meta: dict[str, Any]) -> str:
        """Relevance from plain facts: a fitting leave is aligned, a repeated one or pointless silence is not; a
        spoken action scores by how many of the goal's words it uses, less when it repeats itself."""
        kind = meta.get("action_type")
        if kind == "leave":
            score = 1.0 if meta.get("last") and not meta.get("repeated") else -1.0
            why = "leaves at the end" if score > 0 else "leaves again / too early"
        elif kind == "none":
            score, why = (-0.5, "does nothing again") if meta.get("repeated") else (0.0, "stays silent once")
        else:
            goal_words = {w for w in re.findall(r"[a-z]{4,}", str(meta.get("goal", "")).lower())}
            said = set(re.findall(r"[a-z]{4,}", str(meta.get("text", "")).lower()))
            share = len(goal_words & said) / len(goal_words) if goal_words else 0.0
            score = 1.0 if share >= 0.3 else 0.5 if share >= 0.12 else 0.0 if share > 0 else -0.5
            if meta.get("repeated"):
                score = max(-1.0, score - 0.5)
            why = f"uses {share:.0%} of the goal's words" + (", repeating itself" if meta.get("repeated") else "")
        return json.dumps({"score_justification": f"Simulated judge: {why}.", "score": score})

    @staticmethod
    def _episode(meta: dict[str, Any], sample: int) -> str:
        """SOTOPIA-EVAL scores in range: GOAL follows each side's last goal_c, the rest vary a little by seed."""
        goals = meta.get("goals") or [5.0, 5.0]
        answer = {}
        for side, goal in enumerate(goals):
            rng = _rng("episode", meta.get("seed"), side, sample)
            scores = {
                "believability": rng.choice([7, 8, 8, 9]),
                "relationship": rng.choice([0, 1, 2, 2, 3]),
                "knowledge": rng.choice([3, 4, 5, 6, 7]),
                "secret": rng.choice([0, 0, 0, 0, -1, -3]),
                "social_rules": rng.choice([0, 0, 0, 0, 0, -2]),
                "financial_and_material_benefits": rng.choice([0, 0, 1, 2, -1]),
                "goal": max(0, min(10, round(goal + rng.choice([-1, 0, 0, 1])))),
            }
            answer[f"agent_{side + 1}"] = {
                key: {"reasoning": f"Simulated judge: {key.replace('_', ' ')} {value}.", "score": value}
                for key, value in scores.items()
            }
        return json.dumps(answer)

    @classmethod
    def _episode_as_sotopia(cls, meta: dict[str, Any], sample: int) -> str:
        """The same scores in the form sotopia's evaluator asks for: {"evaluations": {agent: {dimension:
        [reasoning, score]}}}."""
        agents = json.loads(cls._episode(meta, sample))
        return json.dumps(
            {
                "evaluations": {
                    agent: {key: [entry["reasoning"], entry["score"]] for key, entry in scores.items()}
                    for agent, scores in agents.items()
                }
            }
        )

    @staticmethod
    def _own_goal(prompt: str, me: str) -> str:
        match = re.search(rf"^{re.escape(me)}'s goal: (.+)$", prompt, flags=re.M)
        return match.group(1) if match and match.group(1) != "Unknown" else "reach my goal"

    @staticmethod
    def _draft_in(prompt: str) -> str:
        match = re.search(r"written as a plain draft:\n(.+?)\n\nRewrite", prompt, flags=re.S)
        return match.group(1).strip() if match else "let us find a way that works for both of us."

    def _rating(self, meta: dict[str, Any], names: list[str], sample: int) -> str:
        goal_c, goal_p, end = self._targets(meta)
        n = max(1, int(meta.get("samples", 1)))
        c_scores = _spread(goal_c, n, sample)
        p_scores = _spread(goal_p, n, sample)
        scores = {
            "step1": c_scores[0],
            "step2": c_scores[1],
            "step3": p_scores[0],
            "step4": p_scores[1],
            "step5": 0 if end and sample == 0 else 1,
        }
        return json.dumps(
            {
                step: {"analysis": f"Simulated judge: {label} scores {score}.", "score": score}
                for (step, score), label in zip(
                    scores.items(), [names[0], names[1], names[0], names[1], "continue"], strict=True
                )
            }
        )

    def _action(
        self, purpose: str, meta: dict[str, Any], rng: random.Random, me: str, other: str, goal: str
    ) -> dict[str, str]:
        turn = int(meta.get("turn", 0))
        first = other.split()[0]
        if turn == 0:
            return {
                "action_type": "speak",
                "argument": f"Hi {first}, good to see you. I wanted to talk: I hope to {goal}.",
            }
        if turn == 2:
            return {"action_type": "non-verbal communication", "argument": "leans forward and listens closely"}
        if self._profile(meta) == "smooth" and turn >= 8 and self._luck(meta, "leave") < 0.5:
            return {"action_type": "leave", "argument": ""}
        if meta.get("exit"):
            return {
                "action_type": "speak",
                "argument": f"I am glad we found a solution, {first}. I am looking forward to what comes next.",
            }
        if purpose == "action.ssi":
            return {
                "action_type": "speak",
                "argument": f"I can see this matters to you too, {first}. What if we look for a way where you "
                f"get what you need and I can still {goal}?",
            }
        lines = [
            f"I understand where you are coming from, {first}. Still, I hope to {goal}.",
            f"Let me be honest with you, {first}: I would really like to {goal}.",
            f"That is fair, {first}. But to me it matters that I {goal}.",
            f"I hear you. Maybe we can think it over, but I still want to {goal}.",
        ]
        return {"action_type": "speak", "argument": rng.choice(lines)}

    @staticmethod
    def _utility(rng: random.Random, core: str, other: str) -> dict[str, Any]:
        matters = [
            (core, rng.randint(70, 95), round(rng.uniform(0.7, 1.0), 2), round(rng.uniform(0.3, 0.7), 2)),
            (f"a good relationship with {other.split()[0]}", rng.randint(50, 80), 0.6, 0.8),
            ("recognition for the effort", rng.randint(30, 60), 0.4, 0.7),
            ("flexibility on timing", rng.randint(20, 50), 0.3, 0.9),
        ]
        return {
            "thought": "Simulated resource assessment.",
            "matters": [
                {"matter": m, "value": v, "weight": w, "ratio": r, "coefficient": round(w * r, 2)}
                for m, v, w, r in matters
            ],
        }

    def _proposal(self, meta: dict[str, Any], other: str, goal: str) -> dict[str, str]:
        options = meta.get("options") or ["present_proposal"]
        so_far = meta.get("proposals") or []
        first = other.split()[0]
        if options == ["present_proposal"]:
            kind = "present_proposal"
        elif self._luck(meta, "stubborn") < 0.1:  # never agrees: the workflow runs into the turn limit
            kind = "revise_proposal"
        elif "revise_proposal" in so_far:
            kind = "confirm_proposal"
        elif self._luck(meta, "new_angle") < 0.3 and so_far.count("present_proposal") < 3:
            kind = "present_proposal"
        else:
            kind = "revise_proposal"
        text = {
            "present_proposal": f"Here is my proposal, {first}: I {goal}, and in return you get public credit "
            "and flexible timing.",
            "revise_proposal": f"I agree with your direction, {first}; let us adjust the details so that both of us "
            "gain: credit, timing and a follow-up meeting.",
            "confirm_proposal": f"Your proposal works for both of us, {first}. I accept it.",
        }[kind]
        return {"proposal_type": kind, "action_type": "speak", "argument": text}


def _spread(target: float, n: int, sample: int) -> tuple[int, int]:
    """Integer scores for one sample such that the mean over n samples of their average is the target
    (to the nearest 1/(2n))."""
    total = round(target * 2 * n)
    base, extra = divmod(total, 2 * n)
    slots = [base + (1 if i < extra else 0) for i in range(2 * n)]
    first, second = slots[2 * sample], slots[2 * sample + 1]
    return max(0, min(10, first)), max(0, min(10, second))
