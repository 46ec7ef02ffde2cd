"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol, for engine and client tests.

Answers are scripted per purpose (the client sends the purpose in the X-Omega-Purpose header): plain texts,
several choices for `n`, or a `Reply` that sets the status, headers (Retry-After), a raw body, a delay, a body sent
in slow pieces, or empty choices. Without a
script it asks `responder(purpose, body)`. Like vLLM, it refuses n > 1 at temperature 0 and lists its models at
/v1/models. Every request is recorded for assertions (when it arrived, from which client port), and the most
requests it served at once.

It can behave like the servers omega-web adapts to (dialogues/llm/profile.py): ignore `n` or refuse n > 1
(llama-cpp-python, llama-server), refuse `seed`, refuse response_format json_schema but take json_object with a
schema (llama-cpp-python) or refuse structured output altogether, have a small context that it reports at /props
and counts at /tokenize (llama-server), and cut answers at max_tokens with finish_reason "length". Probe requests
(purpose probe.* and tokenize) are answered by the server itself and recorded in `probes`, not `requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    texts: list[str] | None = None
    status: int = 200
    body: str | None = None  # sent as is (garbage, truncated JSON…)
    delay: float = 0.0
    no_choices: bool = False
    headers: dict[str, str] | None = None  # e.g. {"Retry-After": "1"}
    trickle: float = 0.0  # the body in four pieces, this many seconds apart


Answer = str | list[str] | Reply


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that gave up (a timeout test) closes the connection while we answer: not an error here
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedLLMServer:
    def __init__(
        self,
        model: str = "test-model",
        *,
        served: list[str] | None = None,
        responder: Callable[[str, dict[str, Any]], Answer] | None = None,
        n_mode: str = "native",  # native, ignore (one choice back), refuse (HTTP 400 for n > 1)
        n_max: int | None = None,  # HTTP 400 for a larger n, naming the bound (llama-server: its slots)
        refuse_seed: bool = False,
        structured: str = "json_schema",  # json_schema (any dialect), json_object (json_schema → HTTP 500), none
        context: int | None = None,  # tokens (4 characters each); reported at /props, counted at /tokenize
        cut_at_max_tokens: bool = False,  # answers longer than max_tokens are cut, finish_reason "length"
        # report usage.prompt_tokens_details.cached_tokens as vLLM does: the longest beginning shared with an earlier
        # prompt, in tokens of 4 characters
        report_cached: bool = False,
    ) -> None:
        assert n_mode in ("native", "ignore", "refuse") and structured in ("json_schema", "json_object", "none")
        self.n_mode = n_mode
        self.n_max = n_max
        self.refuse_seed = refuse_seed
        self.structured = structured
        self.context = context
        self.cut_at_max_tokens = cut_at_max_tokens or context is not None
        self.report_cached = report_cached
        self.prompts_seen: list[str] = []
        self.probes: list[dict[str, Any]] = []
        self.model = model
        self.served = served if served is not None else [model]
        self.responder = responder
        self.scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._thread: threading.Thread | None = None

    # --- scripting -----------------------------------------------------------------------------------------

    def script(self, purpose: str, *answers: Answer) -> None:
        with self._lock:
            self.scripts[purpose].extend(answers)

    def remaining(self) -> dict[str, int]:
        return {purpose: len(queue) for purpose, queue in self.scripts.items() if queue}

    def purposes(self) -> list[str]:
        return [r["purpose"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def _next(self, purpose: str, body: dict[str, Any]) -> Answer:
        with self._lock:
            queue = self.scripts.get(purpose)
            if queue:
                return queue.popleft()
        if self.responder is None:
            return Reply(status=500, body=json.dumps({"error": f"no scripted answer for {purpose!r}"}))
        return self.responder(purpose, body)

    # --- the server's kind ----------------------------------------------------------------------------------

    def refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """The error this server answers the body with, if it refuses it (as the servers it stands for do)."""
        n = int(body.get("n") or 1)
        if n > 1 and float(body.get("temperature", 1.0)) == 0.0:
            return 400, "n > 1 is not supported with greedy sampling"  # vLLM
        if n > 1 and self.n_mode == "refuse":
            return 400, f"Field 'n': Value must be between 1 <= value <= 1, but got {n}"  # llama-server, one slot
        if self.n_max is not None and n > self.n_max:
            return 400, f"Field 'n': Value must be between 1 <= value <= {self.n_max}, but got {n}"  # its slots
        if "seed" in body and self.refuse_seed:
            return 400, "Unrecognized request argument supplied: seed"
        response_format = body.get("response_format") or {}
        if self.structured == "none" and (response_format or "guided_json" in body):
            return 400, "response_format is not supported"
        if self.structured == "json_object" and (response_format.get("type") == "json_schema" or "guided_json" in body):
            return 500, "Internal Server Error"  # llama-cpp-python: names nothing
        if self.context is not None:
            prompt = sum(len(m.get("content", "")) for m in body.get("messages", [])) // 4
            if prompt >= self.context:
                return 400, "the request exceeds the available context size, try increasing it"
        return None

    def cut(self, texts: list[str], body: dict[str, Any], prompt_tokens: int) -> tuple[list[str], list[str]]:
        """The answers as the server sends them: cut where max_tokens (or the context) ends them."""
        if not self.cut_at_max_tokens:
            return texts, ["stop"] * len(texts)
        limit = int(body.get("max_tokens") or 1 << 30)
        if self.context is not None:
            limit = min(limit, self.context - prompt_tokens)
        cut = [t if len(t) // 4 <= limit else t[: limit * 4] for t in texts]
        return cut, ["length" if c != t else "stop" for c, t in zip(cut, texts, strict=True)]

    # --- serving -------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, text: str, reply: Reply | None = None) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in ((reply and reply.headers) or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if reply is None or not reply.trickle:
                    self.wfile.write(data)
                    return
                step = -(-len(data) // 4)
                for start in range(0, len(data), step):
                    self.wfile.write(data[start : start + step])
                    self.wfile.flush()
                    time.sleep(reply.trickle)

            def do_GET(self) -> None:
                server.probes.append({"path": self.path, "purpose": "", "body": None})
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(
                        200,
                        json.dumps(
                            {
                                "object": "list",
                                "data": [{"id": m, "object": "model", "owned_by": "test"} for m in server.served],
                            }
                        ),
                    )
                elif self.path.rstrip("/") == "/props" and server.context is not None:
                    self._send(200, json.dumps({"default_generation_settings": {"n_ctx": server.context}}))
                else:
                    self._send(404, json.dumps({"error": "not found"}))

            def do_POST(self) -> None:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._post()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                purpose = self.headers.get("X-Omega-Purpose", "")
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, json.dumps({"error": "body is not JSON"}))
                    return
                if purpose.startswith("probe") or purpose == "tokenize":
                    server.probes.append({"path": self.path, "purpose": purpose, "body": body})
                    self._answer_probe(purpose, body)
                    return
                refusal = server.refusal(body)
                if refusal is not None:
                    server.requests.append({"path": self.path, "purpose": purpose, "body": body, "refused": refusal})
                    self._send(refusal[0], json.dumps({"error": {"message": refusal[1]}}))
                    return
                server.requests.append(
                    {
                        "path": self.path,
                        "purpose": purpose,
                        "body": body,
                        "authorization": self.headers.get("Authorization", ""),
                        "at": time.monotonic(),
                        "client_port": self.client_address[1],
                    }
                )
                if not self.path.rstrip("/").endswith("/v1/chat/completions"):
                    self._send(404, json.dumps({"error": "not found"}))
                    return
                if body.get("model") not in server.served:
                    self._send(404, json.dumps({"error": f"The model `{body.get('model')}` does not exist."}))
                    return
                answer = server._next(purpose, body)
                reply = (
                    answer
                    if isinstance(answer, Reply)
                    else Reply(texts=[answer] if isinstance(answer, str) else list(answer))
                )
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.body is not None:
                    self._send(reply.status, reply.body, reply)
                    return
                if reply.status != 200:
                    self._send(reply.status, json.dumps({"error": "scripted failure"}), reply)
                    return
                texts = [] if reply.no_choices else (reply.texts or [])
                if server.n_mode == "ignore":
                    texts = texts[:1]
                prompt = "".join(m.get("content", "") for m in body.get("messages", []))
                texts, reasons = server.cut(texts, body, len(prompt) // 4)
                usage = {
                    "prompt_tokens": len(prompt) // 4,
                    "completion_tokens": sum(len(t) // 4 for t in texts),
                    "total_tokens": len(prompt) // 4 + sum(len(t) // 4 for t in texts),
                }
                if server.report_cached:
                    shared = max((_shared_beginning(p, prompt) for p in server.prompts_seen), default=0)
                    usage["prompt_tokens_details"] = {"cached_tokens": shared // 4}
                server.prompts_seen.append(prompt)
                self._send(
                    200,
                    json.dumps(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": r}
                                for i, (t, r) in enumerate(zip(texts, reasons, strict=True))
                            ],
                            "usage": usage,
                        }
                    ),
                    reply,
                )

            def _answer_probe(self, purpose: str, body: dict[str, Any]) -> None:
                if purpose == "tokenize" or self.path.rstrip("/").endswith("tokenize"):
                    if server.context is None or "content" not in body:
                        self._send(404, json.dumps({"error": "not found"}))
                        return
                    self._send(200, json.dumps({"tokens": list(range(len(body["content"]) // 4))}))
                    return
                if body.get("model") not in server.served:
                    self._send(404, json.dumps({"error": f"The model `{body.get('model')}` does not exist."}))
                    return
                refusal = server.refusal(body)
                if refusal is not None:
                    self._send(refusal[0], json.dumps({"error": {"message": refusal[1]}}))
                    return
                text = '{"answer": "yes"}' if ("response_format" in body or "guided_json" in body) else "OK"
                n = 1 if server.n_mode == "ignore" else int(body.get("n") or 1)
                choices = [
                    {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    for i in range(n)
                ]
                self._send(200, json.dumps({"model": body["model"], "choices": choices, "usage": {}}))

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _shared_beginning(a: str, b: str) -> int:
    """How many characters two texts share from their start."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
