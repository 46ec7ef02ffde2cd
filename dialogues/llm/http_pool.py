"""The LLM client's httpx transport: HTTP/1.1 over keep-alive connections, built for hundreds of requests in flight.

A worker keeps hundreds of chat requests open at once through one `httpx.AsyncClient` (one connection per
request in flight). The stock transport (httpcore over anyio, h11's pure-Python parser) spent most of a worker's
CPU on each request's bookkeeping: its pool walked all connections on every request start and end, anyio opened a
cancel scope on every read and write, and h11 parsed each response in Python (ADR 0008, ADR 0018; bench/).

Here each connection is an asyncio protocol whose responses llhttp parses (httptools, the parser uvicorn uses):
a request is one write, and its answer one future, resolved when the parser says the message is complete. Idle
connections wait per origin and are reused, most recently used first, only before their keep-alive ends (set
below the servers' own, so they do not close it first). A limit caps the connections open at once; the LLM
client's per-endpoint semaphores bound the requests in flight well below it.

What it does not do, because a chat request needs none of it: HTTP/2, proxies, request bodies streamed in parts
(httpx gives a chat request's JSON as bytes) and responses streamed to the caller (each is read whole).
Failures are httpx's own: httpx.ConnectError / ConnectTimeout, httpx.ReadTimeout, httpx.ReadError and
httpx.RemoteProtocolError (a malformed response, or a connection closed before its response was complete), which
the LLM client retries like any transport error.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict, deque

import httptools
import httpx

KEEPALIVE_SECONDS = 4.0  # uvicorn (vLLM) closes idle connections after 5 s
Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed as the bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._framed = False  # the body's end is known from Content-Length or chunks, not from the close
        self.closed = False
        self.idle_until = 0.0

    # --- asyncio ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        if self._headers_done and not self._framed:  # a body that ends with the connection
            self._complete(keep_alive=False)
        elif exc is not None:
            self._fail(httpx.ReadError(f"{type(exc).__name__}: {exc}"))
        else:
            self._fail(httpx.RemoteProtocolError("the server closed the connection before its response was complete"))

    # --- llhttp ---

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()
        self._framed = any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim response: the real one follows
            self._reset()
            return
        self._complete(keep_alive=self._parser.should_keep_alive())

    # --- requests ---

    def _reset(self) -> None:
        self._status, self._headers, self._body = 0, [], []
        self._headers_done = self._framed = False

    def send(self, data: bytes) -> asyncio.Future:
        """Write a request; the future resolves to (status, headers, body, keep_alive)."""
        self._reset()
        self._answer = self._loop.create_future()
        self._transport.write(data)
        return self._answer

    def _complete(self, keep_alive: bool) -> None:
        answer, self._answer = self._answer, None
        if not keep_alive:
            self.close()
        if answer is not None and not answer.done():
            answer.set_result((self._status, self._headers, b"".join(self._body), keep_alive))

    def _fail(self, error: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class PooledTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections for one client, at most `limits.max_connections` open at once."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._max = limits.max_connections or 100
        self._idle: dict[Origin, deque[_Connection]] = defaultdict(deque)
        self._open: set[_Connection] = set()
        self._slots: asyncio.Semaphore | None = None
        self._ssl: ssl.SSLContext | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        timeouts = request.extensions.get("timeout", {})
        data = _head(request) + await request.aread()
        origin = _origin(request.url)
        async with self._slots:
            connection = self._reusable(origin) or await self._connect(request, origin, timeouts.get("connect"))
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    status, headers, body, keep_alive = await connection.send(data)
            except TimeoutError:
                connection.close()
                raise httpx.ReadTimeout("no complete response within the read timeout", request=request) from None
            except httpx.TransportError as exc:
                connection.close()
                exc.request = request
                raise
            except BaseException:  # cancelled: an answer may still come on this connection, so it is not reused
                connection.close()
                raise
            finally:
                if connection.closed:
                    self._open.discard(connection)
            if keep_alive and not connection.closed:
                connection.idle_until = asyncio.get_running_loop().time() + KEEPALIVE_SECONDS
                self._idle[origin].append(connection)
        return httpx.Response(status, headers=headers, content=body, request=request)

    def _reusable(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        if idle[0].idle_until < now:  # the longest idle first: expired ones leave at the bottom, one per request
            self._discard(idle.popleft())
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_until >= now:
                return connection
            self._discard(connection)
        return None

    async def _connect(self, request: httpx.Request, origin: Origin, timeout: float | None) -> _Connection:
        if len(self._open) >= self._max:  # every slot is held, so some open connection is idle: close one
            self._close_one_idle()
        scheme, host, port = origin
        secure, loop = scheme == "https", asyncio.get_running_loop()
        if secure and self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=self._ssl if secure else None,
                    server_hostname=host if secure else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host} within the connect timeout", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from exc
        self._open.add(connection)
        return connection

    def _close_one_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                self._discard(idle.popleft())
                return

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()


def _origin(url: httpx.URL) -> Origin:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _head(request: httpx.Request) -> bytes:
    """The request line and headers (httpx.Request already carries Host and Content-Length)."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines.extend(name + b": " + value for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return PooledTransport(limits)
