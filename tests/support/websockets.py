"""Websocket connections as a browser opens them, with or without a logged-in session (the live tests and the
security wiring)."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator
from django.test import Client

from omega_web.asgi import application


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


class Communicator(WebsocketCommunicator):
    """Channels' test communicator, whose handshake may take as long as a first connection in a process on a busy
    machine does (importing the consumers, loading templates): its own default of 1 s made tests fail there."""

    async def connect(self, timeout: float = 20):
        return await super().connect(timeout)


def connect(path: str, *, cookie: bytes | None, origin: bytes = b"http://localhost:8000") -> Communicator:
    headers = [(b"origin", origin), (b"host", b"localhost:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    return Communicator(application, path, headers=headers)
