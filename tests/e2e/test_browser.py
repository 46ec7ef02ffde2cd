"""What a user does in the browser: log in, browse and filter the library, read a task, import files and watch
the job finish live, and meet the limits of the viewer role. Every page visited is saved as a screenshot in
tests/e2e/artifacts/ (at 1366 and 1920 pixels wide)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, VIEWER_USERNAME, assert_same_document, log_in, mark_document

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=15_000)

DEMO_TASKS = 7
DEMO_HARD = 3
SOTOPIA_FILES = {
    "agents": "sotopia_agent_profiles.jsonl",
    "scenarios": "sotopia_environment_profiles.jsonl",
    "relationships": "sotopia_relationship_profiles.jsonl",
    "tasks": "sotopia_env_agent_combo_storages.jsonl",
    "hard": "sotopia_hard_subset_derived.json",
}


class HeldUpdates:
    """Passes the import page's websocket through the test and holds the server's messages until `release()`,
    so the page can be seen in its pending/running state before the live update lands. The connection to the
    server is the page's own (same cookies, same origin)."""

    def __init__(self) -> None:
        self.holding = True
        self.held: list[str | bytes] = []
        self.delivered: list[str] = []
        self.page_side = None

    def route(self, ws) -> None:
        self.page_side = ws
        server = ws.connect_to_server()
        server.on_message(self._from_server)

    def _from_server(self, message: str | bytes) -> None:
        if self.holding:
            self.held.append(message)
        else:
            self._deliver(message)

    def _deliver(self, message: str | bytes) -> None:
        self.delivered.append(message if isinstance(message, str) else message.decode())
        self.page_side.send(message)

    def release(self) -> None:
        self.holding = False
        for message in self.held:
            self._deliver(message)
        self.held.clear()


def codenames(page: Page) -> list[str]:
    return page.locator("#task-results a.codename").all_inner_texts()


def test_log_in_then_search_and_filter_the_library_in_place(page: Page, snap):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    snap("01-login")

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    snap("02-login-wrong-password")

    log_in(page, "admin", ADMIN_PASSWORD)
    results = page.locator("#task-results")
    expect(results.locator(".count")).to_have_text(f"{DEMO_TASKS} tasks")
    assert {"library_roof_fund", "vintage_bike_sale"} <= set(codenames(page))
    expect(page.get_by_role("link", name="Import tasks")).to_be_visible()
    snap("03-library")

    mark = mark_document(page)
    page.get_by_role("searchbox").press_sequentially("bike", delay=40)
    expect(results.locator(".count")).to_have_text("1 task matches the filters")
    assert codenames(page) == ["vintage_bike_sale"]
    expect(page).to_have_url(re.compile(r"[?&]q=bike\b"))  # the search is in the address, for sharing
    assert_same_document(page, mark)
    snap("04-library-search")

    page.get_by_role("searchbox").fill("")
    expect(results.locator(".count")).to_have_text(f"{DEMO_TASKS} tasks")
    page.get_by_label("Hard").select_option(label="hard only")
    expect(results.locator(".count")).to_have_text(f"{DEMO_HARD} tasks match the filters")
    rows = results.locator("tbody tr")
    expect(rows).to_have_count(DEMO_HARD)
    for row in rows.all():
        expect(row.locator(".badge.hard")).to_have_text("hard")
    assert_same_document(page, mark)
    snap("05-library-hard-only")

    page.get_by_role("searchbox").fill("zzz-nothing-matches")
    expect(results.locator(".empty")).to_contain_text("No task matches these filters.")
    expect(results.get_by_role("link", name="Clear the filters")).to_have_attribute("href", "/tasks/")
    assert_same_document(page, mark)
    snap("06-library-no-match")

    page.go_back()  # the whole page of the previous filters, not the bare results fragment
    expect(results.locator(".count")).to_have_text(f"{DEMO_HARD} tasks match the filters")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_label("Hard")).to_have_value("1")
    expect(page.get_by_role("searchbox")).to_have_value("")


def test_task_page_shows_both_characters_and_what_each_side_sees(page: Page, snap):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="library_roof_fund").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("library_roof_fund")

    cards = page.locator("article.agent")
    expect(cards).to_have_count(2)
    first, second = (card.bounding_box() for card in cards.all())
    assert abs(first["y"] - second["y"]) < 2 and first["x"] + first["width"] <= second["x"], "not side by side"
    names = [card.locator("h2").inner_text() for card in cards.all()]
    goals = [card.locator(".goal.private > p").inner_text() for card in cards.all()]
    for card in cards.all():
        expect(card.locator(".goal.private .private-badge")).to_have_text("private")
    snap("07-task")

    tabs = page.get_by_role("tab")
    prompt = page.locator("pre.prompt")
    expect(page.get_by_role("tab", selected=True)).to_have_text("What agent 1 sees")
    expect(prompt).to_contain_text(f"{names[1]}'s goal: Unknown")
    mark = mark_document(page)

    page.get_by_role("tab", name="What agent 2 sees").click()
    expect(prompt).to_have_attribute("data-viewer", "agent2")
    expect(page.get_by_role("tab", selected=True)).to_have_text("What agent 2 sees")
    expect(prompt).to_contain_text(f"{names[0]}'s goal: Unknown")
    expect(prompt).to_contain_text("Give no more than 5,000")  # agent 2's own goal
    assert "Secure a donation" not in prompt.inner_text()  # agent 1's goal stays hidden
    snap("08-task-agent2-view")

    page.get_by_role("tab", name="What the judges see").focus()  # by keyboard this time
    page.keyboard.press("Enter")
    expect(prompt).to_have_attribute("data-viewer", "judge")
    expect(page.get_by_role("tab", name="What the judges see")).to_be_focused()  # focus survives the swap
    text = prompt.inner_text()
    assert "Unknown" not in text
    assert "Secure a donation of at least 20,000" in text and "Give no more than 5,000" in text
    assert goals[0].startswith("Secure a donation") and goals[1].startswith("Give no more than 5,000")
    expect(tabs).to_have_count(3)
    assert_same_document(page, mark)
    snap("09-task-judge-view")

    page.get_by_role("link", name=names[0]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(names[0])
    expect(page.get_by_role("heading", name=re.compile(r"^Tasks with "))).to_be_visible()
    snap("10-agent")


def test_import_finishes_live_and_a_bad_file_lists_its_problems(page: Page, snap, console, sotopia_dir, tmp_path):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    expect(page.get_by_role("heading", name="Imports", exact=True)).to_be_visible()
    snap("11-imports")

    page.get_by_role("link", name="Import tasks").click()
    expect(page).to_have_url(re.compile(r"/imports/new/$"))
    snap("12-import-form")

    console.allow(r"status of 400")  # the form answers 400 when it is sent back with an error
    page.get_by_role("button", name="Check and import").click()
    expect(page.get_by_role("alert")).to_have_text("Choose at least one file to import.")
    snap("13-import-form-no-file")

    updates = HeldUpdates()
    page.route_web_socket(re.compile(r"/ws/imports/\d+/$"), updates.route)
    for kind, name in SOTOPIA_FILES.items():
        page.locator(f"input[type=file][name={kind}]").set_input_files(sotopia_dir / name)
    with page.expect_response(re.compile(r"/imports/\d+/$")) as first_load:
        page.get_by_role("button", name="Check and import").click()
    delivered = re.search(r'data-status="(\w+)"', first_load.value.text()).group(1)
    assert delivered in {"pending", "running"}, f"the import was {delivered} before its page loaded"
    job = page.locator("section.job")
    expect(job.locator(".working")).to_have_text(re.compile("this page updates by itself"))
    mark = mark_document(page)
    snap("14-import-in-progress")

    updates.release()
    expect(job).to_have_attribute("data-status", "succeeded", timeout=60_000)
    assert_same_document(page, mark)
    assert any('data-status="succeeded"' in message for message in updates.delivered), "no websocket update"
    expect(job.locator(".badge")).to_have_text("succeeded")
    expect(job).to_contain_text("Library now: 46 agents, 96 scenarios, 126 relationships, 457 tasks (73 hard)")
    snap("15-import-succeeded")

    job.get_by_role("link", name="Browse the tasks").click()
    results = page.locator("#task-results")
    expect(results.locator(".count")).to_have_text("450 tasks match the filters")
    snap("16-library-after-import")
    mark = mark_document(page)
    results.get_by_role("link", name="Next →").click()
    expect(results.locator(".pager")).to_contain_text("Page 2 of 18")
    expect(page).to_have_url(re.compile(r"[?&]page=2\b"))
    assert_same_document(page, mark)
    results.locator("a.codename").first.click()
    expect(page.locator("article.agent")).to_have_count(2)
    snap("16-sotopia-task")

    rows = (sotopia_dir / SOTOPIA_FILES["agents"]).read_text().splitlines()
    broken = json.loads(rows[2])
    del broken["age"]
    rows[2] = json.dumps(broken)
    rows[5] = rows[5][:40]
    bad_file = tmp_path / "broken agents.jsonl"
    bad_file.write_text("\n".join(rows))
    page.goto("/imports/new/")
    page.locator("input[type=file][name=agents]").set_input_files(bad_file)
    page.get_by_role("button", name="Check and import").click()
    job = page.locator("section.job")
    expect(job).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(job.get_by_role("alert")).to_contain_text("Nothing was imported. 2 problems")
    table = job.locator("table.problems")
    expect(table.locator("thead th")).to_have_text(["File", "Line", "Field", "Problem"])
    expect(table.locator("tbody tr")).to_have_count(2)
    cells = [row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all()]
    assert [c[:3] for c in cells] == [["broken agents.jsonl", "3", "age"], ["broken agents.jsonl", "6", "(json)"]]
    assert "invalid JSON" in cells[1][3]
    snap("17-import-problems")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    snap("18-imports-after")


def test_a_viewer_can_read_but_not_import(page: Page, snap, console):
    log_in(page, VIEWER_USERNAME, VIEWER_PASSWORD)
    expect(page.locator(".usermenu .role")).to_have_text("viewer")
    expect(page.locator("#task-results tbody tr").first).to_be_visible()
    expect(page.get_by_role("link", name="Import tasks")).to_have_count(0)
    snap("19-viewer-library")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    expect(page.get_by_role("heading", name="Imports", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Import tasks")).to_have_count(0)
    snap("20-viewer-imports")

    console.allow(r"status of 403")  # the forbidden page itself
    answer = page.goto("/imports/new/")
    assert answer.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("main")).to_contain_text("needs the researcher role or higher")
    snap("21-viewer-not-allowed")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
