"""Security wiring that every view and socket relies on, checked on all of them (not a sample): CSRF on every POST
(forms and htmx actions alike), the Content-Security-Policy without inline script on every page, and every
websocket route walked from the routing table refusing strangers. Each test fails if its protection is removed."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.test import Client

from dialogues.live.routing import websocket_urlpatterns
from omega_web.middleware import CONTENT_SECURITY_POLICY
from omega_web.roles import Role
from tests.support.urls import app_urls, concrete_url
from tests.support.websockets import connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

CSRF_REFUSED = b"CSRF verification failed"


def admin_client(make_user, *, enforce: bool) -> Client:
    client = Client(enforce_csrf_checks=enforce)
    client.force_login(make_user(Role.ADMIN, username="sec-admin"))
    return client


def test_every_post_needs_the_csrf_token(samples, make_user):
    client = admin_client(make_user, enforce=True)
    unprotected = []
    for name, _ in app_urls():
        if name in {"login", "healthz"}:
            continue
        answer = client.post(concrete_url(name, samples), {})
        if not (answer.status_code == 403 and CSRF_REFUSED in answer.content):
            unprotected.append((name, answer.status_code))
    assert unprotected == [], f"POST accepted without a CSRF token: {unprotected}"


def test_htmx_posts_with_the_token_header_pass_the_check(samples, make_user):
    client = admin_client(make_user, enforce=True)
    client.get("/runs/")  # sets the csrftoken cookie, as the page does for htmx (hx-headers in base.html)
    token = client.cookies["csrftoken"].value
    for name in ("run_action", "dialogue_evaluate", "annotation_next"):
        if name not in {n for n, _ in app_urls()}:
            continue
        answer = client.post(concrete_url(name, samples), {}, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true")
        assert CSRF_REFUSED not in answer.content, name


def test_every_page_carries_the_content_security_policy(samples, make_user):
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    client = admin_client(make_user, enforce=False)
    missing = []
    for name, _ in app_urls():
        if name == "logout":
            continue
        answer = client.get(concrete_url(name, samples))
        if answer.get("Content-Security-Policy") != CONTENT_SECURITY_POLICY:
            missing.append((name, answer.status_code, answer.get("Content-Security-Policy")))
    assert missing == [], f"pages without the policy: {missing}"


def ws_paths(samples: dict[str, int]) -> list[str]:
    kinds = {"imports": "import", "dialogues": "dialogue", "runs": "run"}
    paths = []
    for pattern in websocket_urlpatterns:
        route = str(pattern.pattern)
        kind = kinds[route.split("/")[1]]
        paths.append("/" + re.sub(r"<int:pk>", str(samples[kind]), route))
    return paths


@pytest.mark.parametrize(("role", "code"), [("anonymous", 4401), (None, 4403)])
def test_every_websocket_route_refuses_strangers(samples, make_user, role, code):
    cookie = None if role == "anonymous" else session_cookie(make_user(None, username="no-role"))
    paths = ws_paths(samples)
    assert len(paths) == len(websocket_urlpatterns) >= 4

    async def attempt(path: str):
        communicator = connect(path, cookie=cookie)
        result = await communicator.connect()
        await communicator.disconnect()
        return result

    for path in paths:
        assert asyncio.run(attempt(path)) == (False, code), path


def test_every_websocket_route_lets_a_viewer_in(samples, make_user):
    cookie = session_cookie(make_user(Role.VIEWER, username="viewer-ws"))

    async def attempt(path: str):
        communicator = connect(path, cookie=cookie)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    for path in ws_paths(samples):
        assert asyncio.run(attempt(path)), path
