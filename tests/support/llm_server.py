"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol, for engine and client tests.

Answers are scripted per purpose (the client sends the purpose in the X-Omega-Purpose header): plain texts,
several choices for `n`, or a `Reply` that sets the status, headers (Retry-After), a raw body, a delay, a body sent
in slow pieces, or empty choices. Without a
script it asks `responder(purpose, body)`. Like vLLM, it refuses n > 1 at temperature 0 and lists its models at
/v1/models. Every request is recorded for assertions (when it arrived, from which client port), and the most
requests it served at once.
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
    ) -> None:
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
                server.requests.append({"path": self.path, "purpose": "", "body": None})
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
                n = int(body.get("n") or 1)
                if n > 1 and float(body.get("temperature", 1.0)) == 0.0:
                    self._send(400, json.dumps({"error": "n > 1 is not supported with greedy sampling"}))
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
                prompt = "".join(m.get("content", "") for m in body.get("messages", []))
                self._send(
                    200,
                    json.dumps(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "model": body["model"],
                            "choices": [
                                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                                for i, t in enumerate(texts)
                            ],
                            "usage": {
                                "prompt_tokens": len(prompt) // 4,
                                "completion_tokens": sum(len(t) // 4 for t in texts),
                                "total_tokens": len(prompt) // 4 + sum(len(t) // 4 for t in texts),
                            },
                        }
                    ),
                    reply,
                )

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
