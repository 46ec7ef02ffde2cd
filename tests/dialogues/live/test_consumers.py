"""Websocket consumers: who gets in, and that a published update reaches the page."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from dialogues.library import events, services
from dialogues.library.models import ImportJob, ImportStatus
from omega_web.roles import Role
from tests.factories import created_run
from tests.support.websockets import connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


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
        first = await communicator.receive_from(timeout=20)
        await communicator.send_to(text_data=json.dumps({"type": "ping"}))
        pong = await communicator.receive_from(timeout=20)

        def finish_in_a_worker_thread():
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportStatus.FAILED,
                problems=[{"file": "a.jsonl", "line": 3, "field": "age", "message": "missing field"}],
            )
            events.import_job_changed(ImportJob.objects.get(pk=job.pk))

        await sync_to_async(finish_in_a_worker_thread, thread_sensitive=False)()
        update = await communicator.receive_from(timeout=20)
        await communicator.disconnect()
        return first, pong, update

    first, pong, update = run(scenario())
    assert f'id="job-status-{job.pk}"' in first and 'data-status="pending"' in first
    assert json.loads(pong) == {"type": "pong"}
    assert f'id="job-status-{job.pk}"' in update and 'data-status="failed"' in update and "a.jsonl" in update


# --- runs and dialogues ----------------------------------------------------------------------------------


@pytest.fixture
def paused_run(demo_tasks):
    from dialogues.library.models import Task

    return created_run([Task.objects.filter(scenario__codename="field_trip_seats").first()], name="live",
                       start_paused=True)  # fmt: skip


def live_paths(run) -> dict[str, str]:
    dialogue = run.dialogues.get()
    return {"dialogue": f"/ws/dialogues/{dialogue.pk}/", "run": f"/ws/runs/{run.pk}/", "runs": "/ws/runs/"}


def step_by_hand(dialogue_id: int) -> None:
    from dialogues.runs.driving import run_coroutine, step_dialogue

    report = run_coroutine(lambda llms: step_dialogue(dialogue_id, llms))
    assert report.kind == "turn", report


def attempt(path: str, cookie: bytes | None, origin: bytes = b"http://localhost:8000"):
    async def scenario():
        communicator = connect(path, cookie=cookie, origin=origin)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    return run(scenario())


@pytest.mark.parametrize("kind", ["dialogue", "run", "runs"])
def test_run_and_dialogue_sockets_refuse_strangers(paused_run, make_user, kind):
    path = live_paths(paused_run)[kind]
    assert attempt(path, None) == (False, 4401)
    assert attempt(path, session_cookie(make_user(None))) == (False, 4403)
    viewer = session_cookie(make_user(Role.VIEWER))
    assert attempt(path, viewer, origin=b"https://evil.example")[0] is False
    assert attempt(path, viewer)[0] is True


@pytest.mark.parametrize("path", ["/ws/dialogues/987654/", "/ws/runs/987654/"])
def test_unknown_run_or_dialogue_is_refused(db, make_user, path):
    assert attempt(path, session_cookie(make_user(Role.VIEWER))) == (False, 4404)


def test_a_saved_turn_reaches_every_open_page_of_its_dialogue_and_run(paused_run, make_user):
    dialogue = paused_run.dialogues.get()
    paths = live_paths(paused_run)
    viewer = session_cookie(make_user(Role.VIEWER))
    researcher = session_cookie(make_user(Role.RESEARCHER))

    async def scenario():
        pages = {
            "viewer": connect(paths["dialogue"] + "?after=-1", cookie=viewer),
            "researcher": connect(paths["dialogue"] + "?after=-1", cookie=researcher),
            "run": connect(paths["run"], cookie=researcher),
            "runs": connect(paths["runs"], cookie=researcher),
        }
        first = {}
        for name, page in pages.items():
            assert (await page.connect())[0], name
            if name != "runs":  # the runs list sends nothing until something moves
                first[name] = await page.receive_from(timeout=20)
        await sync_to_async(step_by_hand, thread_sensitive=False)(dialogue.pk)
        later = {name: await page.receive_from(timeout=20) for name, page in pages.items()}
        for page in pages.values():
            await page.disconnect()
        return first, later

    first, later = run(scenario())
    assert f'id="dialogue-state-{dialogue.pk}"' in first["viewer"] and "turn-" not in first["viewer"]
    assert f'id="run-progress-{paused_run.pk}"' in first["run"]
    for name in ("viewer", "researcher"):
        assert f'hx-swap-oob="beforeend:#timeline-{dialogue.pk}"' in later[name]
        assert f'id="turn-{dialogue.pk}-0"' in later[name]
        assert "<strong>1</strong> turn" in later[name]
    # each page gets the controls its user may use
    assert "Next turn" in later["researcher"] and "Next turn" not in later["viewer"]
    for name in ("run", "runs"):
        assert "<dt>turns</dt><dd>1</dd>" in later[name]
    assert ">Resume<" in later["run"] or ">Pause<" in later["run"]


def test_a_reconnecting_page_catches_up_on_missed_turns(paused_run, make_user):
    dialogue = paused_run.dialogues.get()
    step_by_hand(dialogue.pk)
    step_by_hand(dialogue.pk)
    cookie = session_cookie(make_user(Role.VIEWER))

    async def first_message(after: int) -> str:
        page = connect(f"/ws/dialogues/{dialogue.pk}/?after={after}", cookie=cookie)
        assert (await page.connect())[0]
        message = await page.receive_from(timeout=20)
        await page.disconnect()
        return message

    missed = run(first_message(0))  # the page had turn 0 when it lost the connection
    assert f'<ol id="timeline-{dialogue.pk}" class="timeline" hx-swap-oob="true">' in missed
    assert f'id="turn-{dialogue.pk}-0"' in missed and f'id="turn-{dialogue.pk}-1"' in missed
    current = run(first_message(1))  # up to date: the state only
    assert f'id="dialogue-state-{dialogue.pk}"' in current and "turn-" not in current
