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
    return {
        "dialogue": f"/ws/dialogues/{dialogue.pk}/",
        "run": f"/ws/runs/{run.pk}/",
        "runs": f"/ws/runs/?page=1&newest={run.pk}",  # a list drawn with this run on it
    }


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
            first[name] = await page.receive_from(timeout=20)
        await sync_to_async(step_by_hand, thread_sensitive=False)(dialogue.pk)
        later = {name: await page.receive_from(timeout=20) for name, page in pages.items()}
        for page in pages.values():
            await page.disconnect()
        return first, later

    first, later = run(scenario())
    assert f'id="dialogue-state-{dialogue.pk}"' in first["viewer"] and "turn-" not in first["viewer"]
    assert f'id="run-progress-{paused_run.pk}"' in first["run"] and 'hx-swap-oob="morph"' in first["run"]
    assert f'id="run-row-{paused_run.pk}"' in first["runs"] and 'hx-swap-oob="morph"' in first["runs"]
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


def test_the_runs_list_gains_a_run_launched_after_it_was_drawn_and_only_on_its_first_page(demo_tasks, make_user):
    from dialogues.library.models import Task
    from dialogues.runs.events import run_changed

    task = Task.objects.first()
    older = [created_run([task], name=f"older {i}", start_paused=True) for i in range(21)]  # one more than a page
    drawn_with = older[-1].pk
    cookie = session_cookie(make_user(Role.RESEARCHER))

    def launch() -> int:
        run = created_run([task], name="launched later", start_paused=True)
        run_changed(run.pk)  # published at once: no transaction is open here
        return run.pk

    async def scenario():
        first_page = connect(f"/ws/runs/?page=1&newest={drawn_with}", cookie=cookie)
        second_page = connect(f"/ws/runs/?page=2&newest={drawn_with}", cookie=cookie)
        caught_up = {}
        for name, page in (("first", first_page), ("second", second_page)):
            assert (await page.connect())[0]
            caught_up[name] = await page.receive_from(timeout=20)
        new_pk = await sync_to_async(launch, thread_sensitive=False)()
        added = await first_page.receive_from(timeout=20)
        nothing = await second_page.receive_nothing(timeout=0.5)
        for page in (first_page, second_page):
            await page.disconnect()
        return caught_up, new_pk, added, nothing

    caught_up, new_pk, added, nothing = run(scenario())
    # each page catches up on its own rows, morphed in place
    first, second = caught_up["first"], caught_up["second"]
    assert first.count('hx-swap-oob="morph"') == 20 and f'id="run-row-{older[-1].pk}"' in first
    assert second.count('hx-swap-oob="morph"') == 1 and f'id="run-row-{older[0].pk}"' in second
    # the new run is added at the top of the first page, as a whole row; the second page hears nothing of it
    assert added.startswith('<div hx-swap-oob="afterbegin:#run-list"><li id="run-row-' + str(new_pk))
    assert "launched later" in added and ">paused<" in added
    assert nothing


def test_a_new_run_is_placed_by_its_id_below_newer_runs_already_added(demo_tasks, make_user):
    from dialogues.library.models import Task

    task = Task.objects.first()
    drawn_with = created_run([task], name="on the page", start_paused=True).pk
    first, second = (created_run([task], name=f"new {i}", start_paused=True).pk for i in range(2))
    cookie = session_cookie(make_user(Role.VIEWER))

    async def scenario():
        page = connect(f"/ws/runs/?page=1&newest={drawn_with}", cookie=cookie)
        assert (await page.connect())[0]
        message = await page.receive_from(timeout=20)
        await page.disconnect()
        return message

    message = run(scenario())
    # caught up on connecting: the row drawn, then both new runs, the newer one on top
    assert f'<li id="run-row-{drawn_with}" class="card run-row" data-status="paused" hx-swap-oob="morph">' in message
    assert f'<div hx-swap-oob="afterbegin:#run-list"><li id="run-row-{first}"' in message
    assert f'<div hx-swap-oob="afterbegin:#run-list"><li id="run-row-{second}"' in message
    assert message.index(f"run-row-{first}") < message.index(f"run-row-{second}")  # first in, then second above it


def test_the_run_page_hears_once_that_its_run_settled(paused_run, make_user):
    from dialogues.runs.events import run_changed
    from dialogues.runs.lifecycle import run_cancel

    cookie = session_cookie(make_user(Role.RESEARCHER))

    def cancel() -> None:
        run_cancel(run_id=paused_run.pk)
        run_changed(paused_run.pk)

    async def scenario():
        page = connect(f"/ws/runs/{paused_run.pk}/?status=paused", cookie=cookie)
        assert (await page.connect())[0]
        before = await page.receive_from(timeout=20)
        await sync_to_async(cancel, thread_sensitive=False)()
        settled = await page.receive_from(timeout=20)
        await sync_to_async(run_changed, thread_sensitive=False)(paused_run.pk)
        again = await page.receive_from(timeout=20)
        late = connect(f"/ws/runs/{paused_run.pk}/?status=cancelled", cookie=cookie)  # a page drawn afterwards
        assert (await late.connect())[0]
        drawn_after = await late.receive_from(timeout=20)
        for communicator in (page, late):
            await communicator.disconnect()
        return before, settled, again, drawn_after

    before, settled, again, drawn_after = run(scenario())
    assert 'data-status="paused"' in before and "data-emit" not in before
    assert 'data-status="cancelled"' in settled and 'data-emit="run-settled"' in settled
    assert 'data-status="cancelled"' in again and "data-emit" not in again
    assert "data-emit" not in drawn_after
