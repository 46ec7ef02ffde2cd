"""Asking "what if?" in the browser: fork a simulated dialogue at a turn, play one side yourself while the expert
plays the other, compare the fork with its parent, and run a counterfactual batch. Screenshots 40-46."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, assert_same_document, finished_dialogue, log_in, mark_document

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)

MY_LINE = "Could we share the seats by week, and I credit your team in the newsletter?"


def turns(page: Page):
    return page.locator("ol.timeline > li.turn")


def test_fork_play_a_side_and_compare(page: Page, snap, served, console):
    console.allow("status of 400")  # an empty move is refused on purpose
    log_in(page, "admin", ADMIN_PASSWORD)
    parent_url = finished_dialogue(page)
    parent_id = re.search(r"/dialogues/(\d+)/", parent_url).group(1)

    # Fork from turn 5 (the end of the native start), playing agent 1 ourselves.
    fork_link = turns(page).nth(5).locator(".fork-link")
    fork_link.scroll_into_view_if_needed()
    expect(fork_link).to_be_visible()
    fork_link.click()
    expect(page.get_by_role("heading", name=f"Fork dialogue #{parent_id}")).to_be_visible()
    expect(page.get_by_label("Share turns up to")).to_have_value("5")
    page.get_by_label("Play a side yourself (one fork)").select_option("0")
    snap("40-fork-form")
    page.get_by_role("button", name="Start the fork").click()

    # The fork waits for our move: turn 6 is agent 1's.
    expect(page).to_have_url(re.compile(r"/dialogues/\d+/$"))
    assert page.url != parent_url
    expect(page.locator(".fork-facts")).to_contain_text(f"Fork of dialogue #{parent_id}")
    expect(page.locator(".fork-facts")).to_contain_text("shares turns 0–5")
    expect(turns(page)).to_have_count(6)
    expect(page.locator("ol.timeline .badge.shared")).to_have_count(6)
    expect(page.locator(".play")).to_contain_text("Your move.")
    mark = mark_document(page)
    snap("41-fork-your-move")

    page.get_by_role("button", name="Send").click()  # nothing typed: refused with the reason, in place
    expect(page.locator(".play .error")).to_contain_text("empty argument for speak")
    expect(turns(page)).to_have_count(6)
    page.locator(".play-form textarea").fill(MY_LINE)
    page.get_by_role("button", name="Send").click()
    # Our turn arrives marked as ours, rated; the expert answers for the other side; then it is our move again.
    mine = turns(page).nth(6)
    expect(mine).to_contain_text(MY_LINE)
    expect(mine.locator(".badge.human")).to_have_text("played by admin")
    expect(mine.locator(".scores")).to_contain_text("goal_c")
    expect(turns(page)).to_have_count(8)
    expect(turns(page).nth(7).locator(".badge.human")).to_have_count(0)
    # turns that arrived live get their annotation forms too (the admin annotates): shown in annotating mode
    expect(turns(page).nth(6).locator(".annot-slot form")).to_be_attached()
    expect(turns(page).nth(6).locator(".annot-slot form")).to_be_hidden()  # reading mode, the default
    page.get_by_role("link", name="Annotating", exact=True).click()
    expect(turns(page).nth(6).locator(".annot-slot form")).to_be_visible()
    expect(turns(page).nth(7).locator(".annot-slot form")).to_be_visible()
    expect(page.locator(".play")).to_contain_text("Your move.")
    assert_same_document(page, mark)
    snap("42-fork-after-my-turn")

    # Leave, and let the expert finish the dialogue.
    page.locator(".play-form select").select_option("leave")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".dialogue-state .badge").first).to_have_text("finished", timeout=60_000)
    expect(page.locator(".plot .main-svg").first).to_be_visible()
    snap("43-fork-finished")

    # Compare with the parent: shared turns folded, the rest aligned, both charts in one.
    page.get_by_role("link", name="Compare with the parent").click()
    expect(page.get_by_role("heading", name=re.compile(r"Compare dialogue #\d+ and #\d+"))).to_be_visible()
    expect(page.locator(".pagehead")).to_contain_text("They share turns 0–5 (the fork point)")
    expect(page.locator("details.shared-turns > summary")).to_contain_text("Turns 0–5: shared (6 turns)")
    expect(page.locator("table.compare").last.locator("tbody tr").first.locator("th")).to_contain_text("6")
    expect(page.locator("table.compare").last).to_contain_text(MY_LINE)
    expect(page.locator("tr.branch-differs").first).to_contain_text("≠ branch")
    expect(page.locator(".plot .main-svg").first).to_be_visible()
    expect(page.locator(".plot")).to_contain_text(f"A #{parent_id} goal_c")
    snap("44-compare-with-parent")


def test_a_counterfactual_batch(page: Page, snap, served):
    log_in(page, "admin", ADMIN_PASSWORD)
    finished_dialogue(page)
    page.get_by_role("link", name="Fork…").click()
    page.get_by_label("Share turns up to").fill("5")
    page.get_by_label("Counterfactual batch: N seeds × settings A and B").check()
    page.get_by_label("Seeds per setting (batch)").fill("4")
    page.locator(".arm-b").get_by_label("Strategy from here").select_option("NSI")
    snap("45-batch-form")
    page.get_by_role("button", name="Start the fork").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator(".experiment")).to_contain_text("Counterfactual outcome")
    expect(page.locator(".run-progress .tags .badge").first).to_have_text("finished", timeout=90_000)
    for _ in range(60):  # the distributions are drawn from the finished forks when the page loads
        page.reload()
        if page.locator(".experiment-stats").inner_text().count("4 / 4") == 2:
            break
        page.wait_for_timeout(1000)
    expect(page.locator(".experiment-stats tbody tr")).to_have_count(2)
    assert page.locator(".experiment-stats").inner_text().count("4 / 4") == 2
    expect(page.locator(".experiment .plot.js-plotly-plot")).to_have_count(2)
    expect(page.locator(".experiment-stats")).to_contain_text("strategy from here")
    snap("46-batch-outcome")
