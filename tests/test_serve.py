"""`manage.py serve` as a user runs it: one process answering pages and websockets, with a real Celery worker
inside that runs an upload's import, and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from .support.processes import app_env, login, manage, serve

pytestmark = pytest.mark.slow
ADMIN_PASSWORD = "serve-test-password-1"


@pytest.fixture
def prepared(tmp_path):
    env = app_env(tmp_path, OMEGA_ADMIN_PASSWORD=ADMIN_PASSWORD)
    for command in (["migrate", "--no-input", "-v", "0"], ["ensure_admin"], ["load_demo", "-v", "0"]):
        result = manage(env, *command)
        assert result.returncode == 0, result.stdout + result.stderr
    return env


def wait_for(ws, wanted, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if wanted(message):
            return message
        last = message
    raise AssertionError(f"no matching message within {timeout} s; the last one: {str(last)[:600]!r}")


def wait_for_status(ws, status: str, timeout: float = 30) -> str:
    return wait_for(ws, lambda m: f'data-status="{status}"' in m, timeout)


def test_serve_answers_pages_and_websockets_and_runs_tasks_in_process(prepared, sotopia_dir):
    # A new connection per request, as after a browser's retry: a kept-alive connection that the server closes
    # while the next request is on its way fails that request ("no response line received"), which a browser
    # retries and httpx does not (seen once in 30 runs under load).
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with serve(prepared) as served, httpx.Client(base_url=served.url, timeout=10, limits=no_reuse) as client:
        assert "in-process worker (embedded broker)" in served.output()
        login(client, "admin", ADMIN_PASSWORD)
        page = client.get("/tasks/")
        assert page.status_code == 200 and "library_roof_fund" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/static/css/omega.css").status_code == 200

        form = client.get("/imports/new/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        files = {
            "agents": ("sotopia_agent_profiles.jsonl", (sotopia_dir / "sotopia_agent_profiles.jsonl").read_bytes())
        }
        answer = client.post(
            "/imports/new/",
            data={"csrfmiddlewaretoken": token, "split": "eval", "source": "sotopia"},
            files=files,
            headers={"Referer": f"{served.url}/imports/new/"},
        )
        assert answer.status_code == 302, answer.text
        job_id = int(answer.headers["location"].rstrip("/").rsplit("/", 1)[1])

        ws_url = served.url.replace("http://", "ws://") + f"/ws/imports/{job_id}/"
        cookie = f"sessionid={client.cookies['sessionid']}"
        with ws_connect(ws_url, additional_headers={"Cookie": cookie}, origin=served.url) as ws:
            done = wait_for_status(ws, "succeeded")
            assert "46 agents" in done  # 6 demo agents + 40 imported
            ws.send('{"type": "ping"}')
            # the final update may arrive twice (state on connect, then the worker's event): both are fine
            assert wait_for(ws, lambda m: m == '{"type": "pong"}', timeout=5)
        assert "46 agents" in client.get(f"/imports/{job_id}/").text

        with pytest.raises(InvalidStatus) as refused:  # an anonymous websocket is turned away at the handshake
            ws_connect(ws_url, origin=served.url)
        assert refused.value.response.status_code == 403
    assert served.process.returncode == 0
    assert "omega-web stopped." in served.output()


def test_ctrl_c_stops_the_server_cleanly(prepared):
    with serve(prepared) as served:
        os.killpg(served.process.pid, signal.SIGINT)
        served.process.wait(20)
    assert served.process.returncode == 0, served.output()
    assert "omega-web stopped." in served.output()


def test_a_taken_port_gives_a_clear_message(prepared):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = manage(prepared, "serve", "--port", str(port), timeout=60)
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path):
    result = manage(app_env(tmp_path), "serve", "--port", "0", timeout=60)
    assert result.returncode != 0 and "unapplied migrations" in result.stderr
