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

import itertools
import time
from collections import defaultdict, deque

import httpcore
import httpx

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
