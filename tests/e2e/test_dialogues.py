"""A researcher's day with runs: launch one on a demo task with the simulated expert, step a dialogue turn by
turn, let it run to the end while turns and progress arrive live, and open every detail of a turn. Screenshots go
to tests/e2e/artifacts/ like the other browser tests."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, VIEWER_USERNAME, assert_same_document, log_in, mark_document

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=20_000)

CODENAME = "library_roof_fund"  # two demo tasks; the simulated expert takes both into the negotiation workflow


def turns(page: Page):
    return page.locator("ol.timeline > li.turn")


def test_launch_step_and_watch_a_dialogue_live(page: Page, snap, browser, served):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    page.get_by_role("link", name="New run").first.click()

    # The launcher: the estimate follows the selection before anything starts.
    expect(page.locator("#estimate")).to_contain_text("tasks selected")
    page.get_by_placeholder("codename, scenario, goal, character…").fill(CODENAME)
    expect(page.locator("#estimate")).to_contain_text("2 tasks selected")
    expect(page.locator("#estimate")).to_contain_text("Estimate:")
    expect(page.locator("#estimate")).to_contain_text("LLM requests")
    page.get_by_label("Run name").fill("Roof fund by hand")
    page.get_by_label("Step through by hand (dialogues start paused)").check()
    snap("30-run-launcher")
    page.get_by_role("button", name="Start the run").click()

    # The run's page: everything paused, waiting for a hand.
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run_url = page.url
    expect(page.locator(".run-progress")).to_contain_text("Roof fund by hand")
    expect(page.locator(".run-progress .progress-facts")).to_contain_text("paused")
    expect(page.locator("#dialogue-results")).to_contain_text("2 dialogues")
    snap("31-run-paused")

    # A second tab on the runs list watches the run's progress move.
    watcher = page.context.new_page()
    watcher.goto("/runs/")
    run_row = watcher.locator(".run-row", has_text="Roof fund by hand")
    expect(run_row.locator(".progress-facts")).to_contain_text("turns0")

    page.locator("#dialogue-results a.codename").first.click()
    expect(page).to_have_url(re.compile(r"/dialogues/\d+/$"))
    expect(page.locator(".banner.simulated")).to_be_visible()
    expect(page.locator(".agents-pair")).to_contain_text("private")
    expect(page.get_by_text("Turns appear here as they are saved.")).to_be_visible()
    mark = mark_document(page)
    snap("32-dialogue-before-the-first-turn")

    # Step by hand: a button, then the keyboard.
    page.get_by_role("button", name="Next turn").click()
    expect(turns(page)).to_have_count(1)
    expect(page.get_by_text("Turns appear here as they are saved.")).to_be_hidden()
    expect(page.locator(".dialogue-state")).to_contain_text("1 turn")
    expect(page.get_by_role("button", name="Next turn")).to_be_enabled()
    page.keyboard.press("n")
    expect(turns(page)).to_have_count(2)
    expect(turns(page).nth(1).locator(".badge").first).to_have_text("NSC")
    assert_same_document(page, mark)
    snap("33-dialogue-stepped-twice")

    # Run to the end: the rest arrives live, the chart and the state with it.
    page.get_by_role("button", name="Run to end").click()
    expect(page.locator(".dialogue-state .badge").first).to_have_text("finished", timeout=60_000)
    count = turns(page).count()
    assert count >= 12, count
    assert_same_document(page, mark)
    expect(page.locator(".dialogue-state")).to_contain_text("NSI used")
    expect(page.locator("ol.timeline .badge.branch-NSI").first).to_be_visible()
    expect(page.locator(".plot .main-svg").first).to_be_visible()
    expect(page.locator(".plot")).to_contain_text("goal_c")
    expect(run_row.locator(".progress-facts")).not_to_contain_text("turns0")
    snap("34-dialogue-finished")

    # Every detail of a turn, one click away.
    rated = page.locator("li.turn", has=page.locator("details.rating")).first
    rated.locator("details.rating > summary").click()
    rated.locator("details.sample > summary").first.click()
    sample = rated.locator("details.sample table").first
    expect(sample).to_be_visible()
    expect(sample).to_contain_text("Analysis")

    negotiated = page.locator("li.turn", has=page.locator("details.utility")).first
    negotiated.scroll_into_view_if_needed()
    negotiated.locator("details.utility > summary").click()
    table = negotiated.locator(".utility-table").first
    expect(table.locator("table")).to_be_visible()
    expect(table).to_contain_text("U =")
    table.locator("details.raw-json > summary").click()
    expect(table.locator("details.raw-json pre")).to_contain_text('"U"')
    expect(negotiated.locator(".diff-pair")).to_contain_text("Draft")

    negotiated.locator("details.calls > summary").click()
    call = negotiated.locator("details.call").first
    call.locator("summary").click()
    expect(call.locator("pre.prompt")).to_be_visible()
    expect(call.locator(".call-body")).to_contain_text("Raw response")
    snap("35-dialogue-details-open")

    # Keyboard: j moves to the next turn, ? opens the help.
    page.locator("h1").click()
    page.keyboard.press("j")
    expect(turns(page).first).to_be_focused()
    page.keyboard.press("j")
    expect(turns(page).nth(1)).to_be_focused()
    page.keyboard.press("k")
    expect(turns(page).first).to_be_focused()
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    snap("36-dialogue-keys-help")
    page.keyboard.press("Escape")
    expect(page.locator("#keys-help")).to_be_hidden()

    # A failed filter queues the task's next attempt, shown as a tab beside this one.
    if "failed the filter" in page.locator(".dialogue-state").inner_text():
        tabs = page.locator("nav.attempts a")
        expect(tabs).to_have_count(2)
        expect(tabs.first).to_have_attribute("aria-current", "page")
        expect(tabs.first).to_contain_text("failed filter")
    watcher.close()

    # The list of every dialogue filters in place.
    page.get_by_role("link", name="Dialogues", exact=True).click()
    expect(page.get_by_role("heading", name="Dialogues")).to_be_visible()
    results = page.locator("#dialogue-results")
    expect(results.locator("tbody tr")).not_to_have_count(0)
    page.get_by_label("Task or character").fill(CODENAME)  # other browser tests share this server's data
    page.get_by_label("Status").select_option("finished")
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text(CODENAME)
    snap("37-dialogue-list-filtered")
    page.goto(run_url)
    snap("38-run-after")


def test_a_viewer_reads_dialogues_but_cannot_step_them(browser, served, console):
    context = browser.new_context(base_url=served.url, viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.on("console", console.on_console)
    log_in(page, VIEWER_USERNAME, VIEWER_PASSWORD)
    page.goto("/dialogues/")
    links = page.locator("#dialogue-results a.codename")
    if links.count():
        links.first.click()
        expect(page.locator(".dialogue-state")).to_contain_text("Your role can read dialogues but not step them")
        expect(page.get_by_role("button", name="Next turn")).to_have_count(0)
    page.goto("/runs/")
    expect(page.get_by_role("link", name="New run")).to_have_count(0)
    context.close()
    assert console.errors == []
