"""A stand-in for a vLLM server's capacity, for throughput benchmarks.

At most C sequences are in service at once; each call takes a fixed latency; beyond C, requests wait in a FIFO
queue; a request for n samples takes n places. It speaks enough of the OpenAI protocol for omega-web's client
(/v1/models, /v1/chat/completions) and answers every purpose with valid output: tasks whose scenario contains
"[deadlock]" stall at goal 7 after turn 5 (so DSI runs the negotiation workflow), the others go well and end.

    python -m bench.capacity_server --port 9100 --capacity 256 --latency 2.0

GET /metrics returns what it served: requests, sequences, prompt tokens, busy slot-seconds, queue waits, and what
a vLLM prefix cache would have saved (bench/prefix_cache.py): per purpose, the prompt tokens needing prefill with a
cache of --cache-blocks blocks and with an unlimited one. Each answer reports its cached tokens as vLLM does with
--enable-prompt-tokens-details (usage.prompt_tokens_details.cached_tokens).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import deque
from typing import Any

from bench.prefix_cache import DEFAULT_BLOCKS, CacheModel

MODEL = "bench-expert"


class Capacity:
    """C slots, FIFO: a request needing n slots waits until n are free and everyone before it was served."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.free = slots
        self.waiting: deque[tuple[int, asyncio.Future]] = deque()
        self.busy_since = time.monotonic()
        self.busy_integral = 0.0  # slot-seconds in service

    def _account(self) -> None:
        now = time.monotonic()
        self.busy_integral += (self.slots - self.free) * (now - self.busy_since)
        self.busy_since = now

    async def acquire(self, n: int) -> None:
        n = min(n, self.slots)
        if not self.waiting and self.free >= n:
            self._account()
            self.free -= n
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((n, future))
        await future

    def release(self, n: int) -> None:
        self._account()
        self.free += min(n, self.slots)
        while self.waiting and self.free >= self.waiting[0][0]:
            need, future = self.waiting.popleft()
            self.free -= need
            future.set_result(None)


class Metrics:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.monotonic()
        self.first_request: float | None = None  # wall-clock time of the first chat request
        self.requests = 0
        self.sequences = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.wait_total = 0.0
        self.wait_max = 0.0


def _turn(prompt: str, pattern: str) -> int:
    found = re.findall(pattern, prompt, flags=re.M)
    return int(found[-1]) if found else -1


def _sample(c: int, p: int, end: bool) -> dict[str, Any]:
    scores = (c, c, p, p, 0 if end else 1)
    return {f"step{i}": {"analysis": "bench", "score": s} for i, s in enumerate(scores, start=1)}


def _utility() -> dict[str, Any]:
    return {
        "thought": "t",
        "matters": [
            {"matter": "the main point", "value": 80, "weight": 0.9, "ratio": 0.5, "coefficient": 0.45},
            {"matter": "the relationship", "value": 60, "weight": 0.5, "ratio": 0.8, "coefficient": 0.4},
        ],
    }


EPISODE_KEYS = ("believability", "relationship", "knowledge", "secret", "social_rules",
                "financial_and_material_benefits", "goal")  # fmt: skip


def answer(purpose: str, prompt: str, n: int) -> list[str]:
    deadlock = "[deadlock]" in prompt
    if purpose == "eval.relevance":
        return [json.dumps({"score_justification": "It is about the goal.", "score": 0.5})] * n
    if purpose == "eval.sotopia":
        agent = {key: {"reasoning": "r", "score": 0} for key in EPISODE_KEYS}
        return [json.dumps({"agent_1": agent, "agent_2": agent})] * n
    if purpose == "rating":
        turn = _turn(prompt, r"^Turn #(\d+)$")
        if deadlock:
            c, p, end = (7, 7, False) if turn <= 5 else (8, 8, turn >= 15)
        else:
            c, p, end = 9, 9, turn >= 7
        return [json.dumps(_sample(c, p, end and i == 0)) for i in range(n)]
    turn = _turn(prompt, r"You are at Turn #(\d+)")
    speech = {"action_type": "speak", "argument": f"A bench line for turn {turn} about the matter at hand."}
    if purpose in {"action.native", "action.ssi", "nsi.interests", "nsi.difference"}:
        text = json.dumps(speech)
    elif purpose in {"nsi.own_utility", "nsi.other_utility"}:
        text = json.dumps(_utility())
    elif purpose == "nsi.proposal_draft":
        text = json.dumps({"thought": "t", "draft": "offer something outside the conflict"})
    elif purpose == "nsi.update":
        matters = _utility()["matters"]
        text = json.dumps({"thought": "t", "own_matters": matters, "other_matters": matters, "draft": "adjust"})
    elif purpose == "nsi.proposal":
        allowed = re.findall(r"(present_proposal|revise_proposal|confirm_proposal)", prompt.split("Your draft")[-1])
        kind = (
            "present_proposal"
            if allowed == ["present_proposal"]
            else ("confirm_proposal" if turn >= 13 else "revise_proposal")
        )
        text = json.dumps({"proposal_type": kind, **speech})
    elif purpose == "nsi.style_transfer":
        text = "In my own words, this is what I would like us to agree on today."
    elif purpose == "nsi.confirm":
        text = json.dumps({"proposal_type": "confirm_proposal", **speech})
    else:
        text = json.dumps(speech)
    return [text] * n


class Server:
    def __init__(self, capacity: int, latency: float, cache_blocks: int = DEFAULT_BLOCKS) -> None:
        self.capacity = Capacity(capacity)
        self.latency = latency
        self.metrics = Metrics()
        self.cache = CacheModel(cache_blocks)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                status, payload = await self.route(method, path, headers, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: "
                    f"{len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "GET" and path.rstrip("/").endswith("/v1/models"):
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
        if method == "GET" and path == "/metrics":
            return 200, self.report()
        if method == "POST" and path == "/metrics/reset":
            self.metrics.reset()
            self.cache.reset()
            self.capacity.busy_integral = 0.0
            self.capacity.busy_since = time.monotonic()
            return 200, {"ok": True}
        if method == "POST" and path.rstrip("/").endswith("/v1/chat/completions"):
            request = json.loads(body)
            if headers.get("x-omega-purpose", "").startswith("probe"):  # the client's server profile: not measured
                text = '{"answer": "yes"}' if "response_format" in request else "OK"
                choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                           for i in range(int(request.get("n") or 1))]  # fmt: skip
                return 200, {"id": "probe", "object": "chat.completion", "model": MODEL, "choices": choices}
            if self.metrics.first_request is None:
                self.metrics.first_request = time.time()
            n = int(request.get("n") or 1)
            prompt = request["messages"][0]["content"]
            queued = time.monotonic()
            await self.capacity.acquire(n)
            waited = time.monotonic() - queued
            purpose = headers.get("x-omega-purpose", "")
            # the whole conversation is the prompt (a re-ask adds the answer and the repair after the first message)
            tokens, cached = self.cache.serve(purpose, "\n".join(m["content"] for m in request["messages"]), n)
            try:
                await asyncio.sleep(self.latency)
            finally:
                self.capacity.release(n)
            texts = answer(purpose, prompt, n)
            m = self.metrics
            m.requests += 1
            m.sequences += n
            m.prompt_tokens += tokens
            m.completion_tokens += sum(len(t) // 4 for t in texts)
            m.wait_total += waited
            m.wait_max = max(m.wait_max, waited)
            return 200, {
                "id": "bench",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [
                    {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for i, t in enumerate(texts)
                ],
                "usage": {
                    "prompt_tokens": tokens,
                    "completion_tokens": sum(len(t) // 4 for t in texts),
                    "prompt_tokens_details": {"cached_tokens": cached},
                },
            }
        return 404, {"error": "not found"}

    def report(self) -> dict[str, Any]:
        self.capacity._account()
        elapsed = time.monotonic() - self.metrics.started
        m = self.metrics
        return {
            "elapsed": elapsed,
            "requests": m.requests,
            "sequences": m.sequences,
            "prompt_tokens": m.prompt_tokens,
            "completion_tokens": m.completion_tokens,
            "busy_slot_seconds": self.capacity.busy_integral,
            "capacity": self.capacity.slots,
            "latency": self.latency,
            "mean_queue_wait": m.wait_total / m.requests if m.requests else 0.0,
            "max_queue_wait": m.wait_max,
            "first_request": m.first_request,
            "cache": self.cache.report(),
        }


async def serve(port: int, capacity: int, latency: float, cache_blocks: int = DEFAULT_BLOCKS) -> None:
    server = Server(capacity, latency, cache_blocks)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", port, backlog=2048)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=256)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument(
        "--cache-blocks", type=int, default=DEFAULT_BLOCKS, help="prefix cache capacity in blocks of 16 tokens"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.capacity, args.latency, args.cache_blocks))


if __name__ == "__main__":
    main()
