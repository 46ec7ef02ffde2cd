"""An httpx transport that stays cheap with hundreds of connections in one client.

httpcore's AsyncConnectionPool re-examines every connection whenever a request starts or ends, and for each
idle connection counts all connections again, probing idle sockets with system calls: quadratic in the number
of connections. With hundreds of requests in flight (the point of one pooled client per worker process) that
bookkeeping took most of the worker's CPU (bench/: ~40 ms of client CPU per request at 400 connections).

Here the one transport of the client spreads requests over small pools (shards) in turn, each doing its
bookkeeping in one pass over its own connections; idle sockets are probed at most once a second, and a
connection is reused only before its keep-alive expires (set below the servers' own, so they do not close it
first). Small shards keep that pass short (bench/: 48 connections a shard cost ~10% more CPU per request than
16 at 0.2 s per call). A shard may open twice its share of connections, so a request never waits on a busy
shard while the client as a whole is below its limit (the LLM client's semaphores bound requests in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
import typing
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator

import httpcore
import httpx
from httpcore._utils import is_socket_readable

SWEEP_SECONDS = 1.0  # how often idle connections are probed for a server-side close
KEEPALIVE_SECONDS = 4.0  # uvicorn (vLLM) closes idle connections after 5 s
CONNECTIONS_PER_SHARD = 16


def _keepalive_expired(connection: object, now: float) -> bool:
    inner = getattr(connection, "_connection", None)
    expire_at = getattr(inner, "_expire_at", None)
    return expire_at is not None and now > expire_at


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    _last_sweep = 0.0

    def _assign_requests_to_connections(self) -> list:
        closing = []
        now = time.monotonic()
        sweep = now - self._last_sweep >= SWEEP_SECONDS
        if sweep:
            self._last_sweep = now
            kept = []
            for connection in self._connections:
                if connection.is_closed():
                    continue
                if connection.is_idle() and connection.has_expired():  # probes the socket
                    closing.append(connection)
                    continue
                kept.append(connection)
            self._connections = kept
        queued = [request for request in self._requests if request.is_queued()]
        if not queued:
            return closing
        taken: set[int] = set()  # connections assigned or closed in this pass
        available: dict[tuple, deque] = defaultdict(deque)
        idle = deque()
        for connection in self._connections:
            if connection.is_closed():
                taken.add(id(connection))
            elif connection.is_available():
                available[_origin_key(connection)].append(connection)
                idle.append(connection)
        self._connections = [c for c in self._connections if id(c) not in taken]
        for request in queued:
            origin = request.request.url.origin
            candidates = available.get(_key(origin))
            connection = None
            while candidates:
                candidate = candidates.popleft()
                if id(candidate) in taken or not candidate.can_handle_request(origin):
                    continue
                if _keepalive_expired(candidate, now):
                    taken.add(id(candidate))
                    self._connections.remove(candidate)
                    closing.append(candidate)
                    continue
                connection = candidate
                break
            if connection is None:
                if len(self._connections) >= self._max_connections:
                    while idle and id(idle[0]) in taken:
                        idle.popleft()
                    if not idle:
                        continue  # stays queued until a connection frees up
                    victim = idle.popleft()
                    taken.add(id(victim))
                    self._connections.remove(victim)
                    closing.append(victim)
                connection = self.create_connection(origin)
                self._connections.append(connection)
            taken.add(id(connection))
            request.assign_to_connection(connection)
        return closing


def _key(origin: httpcore.Origin) -> tuple:
    return (origin.scheme, origin.host, origin.port)


def _origin_key(connection: object) -> tuple:
    origin = getattr(connection, "_origin", None)
    return _key(origin) if origin is not None else ()


@contextlib.contextmanager
def _mapped(errors: dict[type[Exception], type[Exception]]) -> Iterator[None]:
    """Socket errors as httpcore's own, which httpx maps to its transport errors (TimeoutError first: it is an
    OSError too)."""
    try:
        yield
    except Exception as exc:
        for kind, mapped in errors.items():
            if isinstance(exc, kind):
                raise mapped(str(exc) or type(exc).__name__) from exc
        raise


_READ = {TimeoutError: httpcore.ReadTimeout, OSError: httpcore.ReadError}
_WRITE = {TimeoutError: httpcore.WriteTimeout, OSError: httpcore.WriteError}
_CONNECT = {TimeoutError: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}


class AsyncioStream(httpcore.AsyncNetworkStream):
    """A connection over asyncio's streams. httpcore's default for asyncio goes through anyio, which opens a
    cancel scope for every read and write; with hundreds of requests in flight that was a tenth of a worker's
    CPU (bench/). Timeouts are asyncio's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(_READ):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(_WRITE):
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self._writer.wait_closed()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            with _mapped({ssl.SSLError: httpcore.ConnectError, **_CONNECT}):
                async with asyncio.timeout(timeout):
                    await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except Exception:
            await self.aclose()
            raise
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            return is_socket_readable(self._writer.get_extra_info("socket"))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(_CONNECT):
            async with asyncio.timeout(timeout):  # asyncio turns TCP_NODELAY on for TCP sockets
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        return _with_options(AsyncioStream(reader, writer), socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[tuple] | None = None
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(_CONNECT):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        return _with_options(AsyncioStream(reader, writer), socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _with_options(stream: AsyncioStream, options: Iterable[tuple] | None) -> AsyncioStream:
    for option in options or ():
        stream.get_extra_info("socket").setsockopt(*option)
    return stream


class ShardedTransport(httpx.AsyncBaseTransport):
    """One transport over several connection pools, used in turn."""

    def __init__(self, limits: httpx.Limits) -> None:
        total = limits.max_connections or 100
        shards = max(1, -(-total // CONNECTIONS_PER_SHARD))
        per_shard = -(-total // shards)
        self._transports = []
        for _ in range(shards):
            transport = httpx.AsyncHTTPTransport(limits=limits)
            stock = transport._pool
            transport._pool = LinearConnectionPool(
                ssl_context=stock._ssl_context,
                max_connections=min(total, 2 * per_shard),
                max_keepalive_connections=per_shard,
                keepalive_expiry=KEEPALIVE_SECONDS,
                http1=True,
                http2=False,
                network_backend=AsyncioBackend(),
            )
            self._transports.append(transport)
        self._next = itertools.cycle(self._transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


def pooled_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return ShardedTransport(limits)
