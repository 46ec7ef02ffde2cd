"""Websocket consumers: who gets in, and that a published update reaches the page."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from dialogues import events, services
from dialogues.models import ImportJob, ImportStatus
from omega_web.asgi import application
from omega_web.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def connect(path: str, *, cookie: bytes | None, origin: bytes = b"http://localhost:8000") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"localhost:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


@pytest.fixture
def job():
    return services.import_job_create(
        created_by=None, origin="cli", split="eval", source="sotopia", files={"agents": ("a.jsonl", b"")}, enqueue=False
    )


def run(coro):
    return asyncio.run(coro)


def test_anonymous_is_refused(job):
    async def scenario():
        communicator = connect(f"/ws/imports/{job.pk}/", cookie=None)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert run(scenario()) == (False, 4401)


def test_account_without_role_is_refused(job, make_user):
    cookie = session_cookie(make_user(None))

    async def scenario():
        communicator = connect(f"/ws/imports/{job.pk}/", cookie=cookie)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert run(scenario()) == (False, 4403)


def test_foreign_origin_is_refused(job, make_user):
    cookie = session_cookie(make_user(Role.ADMIN))

    async def scenario():
        communicator = connect(f"/ws/imports/{job.pk}/", cookie=cookie, origin=b"https://evil.example")
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert run(scenario()) is False


def test_unknown_job_is_refused(make_user):
    cookie = session_cookie(make_user(Role.VIEWER))

    async def scenario():
        communicator = connect("/ws/imports/987654/", cookie=cookie)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert run(scenario()) == (False, 4404)


def test_viewer_gets_current_state_then_live_updates(job, make_user):
    cookie = session_cookie(make_user(Role.VIEWER))

    async def scenario():
        communicator = connect(f"/ws/imports/{job.pk}/", cookie=cookie)
        connected, _ = await communicator.connect()
        assert connected
        first = await communicator.receive_from(timeout=5)
        await communicator.send_to(text_data=json.dumps({"type": "ping"}))
        pong = await communicator.receive_from(timeout=5)

        def finish_in_a_worker_thread():
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportStatus.FAILED,
                problems=[{"file": "a.jsonl", "line": 3, "field": "age", "message": "missing field"}],
            )
            events.import_job_changed(ImportJob.objects.get(pk=job.pk))

        await sync_to_async(finish_in_a_worker_thread, thread_sensitive=False)()
        update = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return first, pong, update

    first, pong, update = run(scenario())
    assert f'id="job-status-{job.pk}"' in first and 'data-status="pending"' in first
    assert json.loads(pong) == {"type": "pong"}
    assert f'id="job-status-{job.pk}"' in update and 'data-status="failed"' in update and "a.jsonl" in update
