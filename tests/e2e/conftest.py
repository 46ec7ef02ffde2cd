"""Browser tests: the app's own `manage.py serve` in a subprocess, driven through Debian's Chromium.

Playwright's sync API keeps an event loop running while it is open, and Django refuses database access from
inside a running loop; so these fixtures live only as long as the e2e package, and e2e tests never touch the
test database themselves (everything goes through the served app).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, WIDE, Console, log_in  # noqa: F401
from ..support.processes import Served, app_env, manage, serve
from ..support.services import unavailable

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

CONFIRM_TASKS = 5
ADMIN_PASSWORD = "e2e-admin-password-1"
VIEWER_USERNAME = "vera"
VIEWER_PASSWORD = "e2e-viewer-password-1"
CREATE_VIEWER = f"""
from django.contrib.auth.models import Group, User
user = User.objects.create_user({VIEWER_USERNAME!r}, password={VIEWER_PASSWORD!r})
user.groups.add(Group.objects.get(name="viewer"))
"""


@pytest.fixture(scope="package")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (make e2e-browser installs it)")
    return CHROMIUM


@pytest.fixture(scope="package")
def served(tmp_path_factory, chromium_path) -> Iterator[Served]:
    """One served app for the package: migrated, with the admin account, a viewer and the demo tasks."""
    var_dir = tmp_path_factory.mktemp("e2e-var")
    # The simulated expert answers after 40 ms, like a fast model server, so turns arrive one by one.
    # A launch of more than CONFIRM_TASKS tasks asks for a confirmation: all seven demo tasks do, one or two do not.
    env = app_env(
        var_dir,
        OMEGA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        OMEGA_SIMULATED_LATENCY_MS="40",
        OMEGA_LAUNCH_CONFIRM_TASKS=str(CONFIRM_TASKS),
    )
    for command in (
        ["migrate", "--no-input", "-v", "0"],
        ["ensure_admin"],
        ["load_demo", "-v", "0"],
        ["shell", "-c", CREATE_VIEWER],
    ):
        result = manage(env, *command)
        assert result.returncode == 0, f"manage.py {' '.join(command)}:\n{result.stdout}{result.stderr}"
    with serve(env) as running:
        yield running


@pytest.fixture(scope="package")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, served, console):
    context = browser.new_context(base_url=served.url, viewport=LAPTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()
    assert console.errors == [], "the browser reported errors:\n" + "\n".join(console.errors)


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):  # only this run's pictures, so none is mistaken for a current one
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def snap(page, artifacts):
    """Full-page screenshots at laptop and wide-screen size: `snap("03-task-library")`."""

    def take(name: str) -> None:
        page.screenshot(path=artifacts / f"{name}-1366.png", full_page=True, animations="disabled")
        page.set_viewport_size(WIDE)
        page.screenshot(path=artifacts / f"{name}-1920.png", full_page=True, animations="disabled")
        page.set_viewport_size(LAPTOP)

    return take


# --- what the browser tests do in a page -----------------------------------------------------------------------

CODENAME = "field_trip_seats"  # the demo scenario the what-if, evaluation and annotation tests launch


def mark_document(page: Page) -> str:
    """Tag the loaded document; `assert_same_document` then proves nothing reloaded the page since."""
    return page.evaluate("() => (window.e2eDocument = String(Math.random()))")


def assert_same_document(page: Page, mark: str) -> None:
    assert page.evaluate("() => window.e2eDocument") == mark, "the page was reloaded"


def finished_dialogue(page: Page) -> str:
    """Launch a run on one demo scenario with the simulated expert and open its first dialogue once finished."""
    page.goto("/runs/new/")
    page.get_by_placeholder("codename, scenario, goal, character…").fill(CODENAME)
    expect(page.locator("#estimate")).to_contain_text("1 task selected")  # the search has narrowed the choice
    page.get_by_label("Run name").fill("What-if parent")
    page.get_by_role("button", name="Start the run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    page.locator("#dialogue-results a.codename").first.click()
    expect(page.locator(".dialogue-state .badge").first).to_have_text("finished", timeout=90_000)
    return page.url
