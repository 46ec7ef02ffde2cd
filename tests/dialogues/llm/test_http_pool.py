"""The LLM client's HTTP/1.1 transport against real TCP servers that answer as scripted, well and badly."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import httpx
import pytest

from dialogues.llm import http_pool
from dialogues.llm.http_pool import PooledTransport

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def ok(body: bytes = b'{"ok": true}', *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Server:
    """Answers each request on a connection with the next scripted answer; counts connections and requests."""

    def __init__(self, *answers: Answer | bytes) -> None:
        self.answers = list(answers)
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                else:
                    await answer(request, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def post(transport: PooledTransport, url: str, timeout: float = 5.0) -> Awaitable[httpx.Response]:
    request = httpx.Request(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": "m"},
        extensions={"timeout": {"connect": 5, "read": timeout}},
    )
    return transport.handle_async_request(request)


def transport(connections: int = 8) -> PooledTransport:
    return PooledTransport(httpx.Limits(max_connections=connections))


async def closing(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.close()


def delayed(seconds: float) -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        writer.write(ok())

    return answer


def test_a_connection_is_kept_alive_and_reused():
    async def main():
        async with Server(ok(b'{"n": 1}')) as server:
            pool = transport()
            first = await post(pool, server.url)
            second = await post(pool, server.url)
            await pool.aclose()
        assert first.status_code == second.status_code == 200 and second.json() == {"n": 1}
        assert server.connections == 1 and len(server.requests) == 2
        request = server.requests[0]
        assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") and request.endswith(b'{"model":"m"}')
        assert b"\r\nhost: 127.0.0.1:" in request.lower() and b"\r\ncontent-length: 13" in request.lower()

    asyncio.run(main())


def test_chunked_and_compressed_answers_are_decoded():
    body = gzip.compress(b'{"choices": []}')
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (10, body[:10])
        + b"%x\r\n%s\r\n" % (len(body) - 10, body[10:])
        + b"0\r\n\r\n"
    )

    async def main():
        async with Server(chunked) as server:
            pool = transport()
            answers = [await post(pool, server.url) for _ in range(2)]
            await pool.aclose()
        assert [a.json() for a in answers] == [{"choices": []}] * 2 and server.connections == 1

    asyncio.run(main())


def test_a_body_that_ends_with_the_connection_is_read_whole_and_the_connection_not_reused():
    async def close_delimited(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"whole": ')
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"true}")
        await writer.drain()
        writer.close()

    async def main():
        async with Server(close_delimited) as server:
            pool = transport()
            answers = [await post(pool, server.url) for _ in range(2)]
            await pool.aclose()
        assert [a.json() for a in answers] == [{"whole": True}] * 2 and server.connections == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer, error",
    [
        (closing, httpx.RemoteProtocolError),  # closed before any answer
        (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut', httpx.RemoteProtocolError),  # closed mid-body
        (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError),
    ],
    ids=["closed-before-answering", "closed-mid-body", "malformed"],
)
def test_broken_answers_are_transport_errors_and_the_next_request_gets_a_fresh_connection(answer, error):
    async def then_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def main():
        async with Server(answer if callable(answer) else then_close, ok()) as server:
            pool = transport()
            with pytest.raises(error) as raised:
                await post(pool, server.url)
            assert raised.value.request.url.path == "/v1/chat/completions"
            good = await post(pool, server.url)
            await pool.aclose()
        assert good.json() == {"ok": True} and server.connections == 2

    asyncio.run(main())


def test_a_slow_answer_is_a_read_timeout_and_its_connection_is_dropped():
    async def main():
        async with Server(delayed(0.5), ok()) as server:
            pool = transport()
            with pytest.raises(httpx.ReadTimeout):
                await post(pool, server.url, timeout=0.1)
            assert (await post(pool, server.url)).status_code == 200
            await pool.aclose()
        assert server.connections == 2

    asyncio.run(main())


def test_no_server_is_a_connect_error():
    async def main():
        async with Server(ok()) as server:
            url = server.url
        with pytest.raises(httpx.ConnectError, match="cannot connect"):
            await post(transport(), url)

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    async def answer_then_close(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(ok())  # says nothing of closing, then closes, as a server whose keep-alive ran out
        await writer.drain()
        writer.close()

    async def main():
        async with Server(answer_then_close) as server:
            pool = transport()
            await post(pool, server.url)
            await asyncio.sleep(0.05)
            assert (await post(pool, server.url)).status_code == 200
            await pool.aclose()
        assert server.connections == 2

    asyncio.run(main())


def test_an_idle_connection_past_its_keepalive_is_not_reused(monkeypatch):
    monkeypatch.setattr(http_pool, "KEEPALIVE_SECONDS", 0.05)

    async def main():
        async with Server(ok()) as server:
            pool = transport()
            await post(pool, server.url)
            await asyncio.sleep(0.1)
            await post(pool, server.url)
            await pool.aclose()
        assert server.connections == 2

    asyncio.run(main())


def test_connections_open_at_once_are_capped():
    async def main():
        async with Server(delayed(0.05)) as server:
            pool = transport(connections=3)
            answers = await asyncio.gather(*(post(pool, server.url) for _ in range(12)))
            await pool.aclose()
        assert all(a.status_code == 200 for a in answers) and len(server.requests) == 12
        assert server.most_open <= 3 and server.connections == 3

    asyncio.run(main())
