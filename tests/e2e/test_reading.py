"""The dialogue page made for reading (issue 28): reading is the default and short, annotating shows every turn's
controls, the m key switches in place; a turn that arrives out of sight is flagged with a button that jumps to it,
and the step controls stay where the reader is. Every test fails on any console error (the `page` fixture)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=20_000)

CODENAME = "library_roof_fund"  # the simulated expert's first attempt on it is 18 turns long (seed 0)
READING_LIMIT_PX = 3_000


def turns(page: Page):
    return page.locator("ol.timeline > li.turn")


def page_height(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollHeight")


def test_reading_is_short_annotating_shows_the_controls_and_m_switches(page: Page, snap):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/runs/new/")
    page.get_by_placeholder("codename, scenario, goal, character…").fill(CODENAME)
    expect(page.locator("#estimate")).to_contain_text("2 tasks selected")
    page.get_by_label("Run name").fill("Reading the roof fund")
    page.get_by_label("Step through by hand (dialogues start paused)").check()
    page.get_by_role("button", name="Start the run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    page.locator("#dialogue-results a.codename").first.click()
    expect(page).to_have_url(re.compile(r"/dialogues/\d+/$"))
    dialogue_url = page.url

    # Two turns by hand, then the rest while the reader stays at the top: the new turns arrive out of sight.
    page.get_by_role("button", name="Next turn").click()
    expect(turns(page)).to_have_count(1)
    page.keyboard.press("n")
    expect(turns(page)).to_have_count(2)
    # the step controls stay where the reader is: at the foot of the page they are still in view
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    assert page.evaluate("() => window.scrollY") > 0
    expect(page.get_by_role("button", name="Run to end")).to_be_in_viewport()
    page.evaluate("() => window.scrollTo(0, 0)")
    page.get_by_role("button", name="Run to end").click()
    expect(page.locator(".dialogue-state .badge").first).to_have_text("finished", timeout=90_000)
    count = turns(page).count()
    assert count == 18, f"the simulated expert's first attempt is 18 turns, this one {count}"

    # The last turn arrived below the fold: a button says so and jumps to it.
    jump = page.locator("[data-new-turn]")
    expect(jump).to_be_visible()
    expect(jump).to_have_text(f"New turn {count - 1} ↓")
    jump.click()
    last = turns(page).last
    expect(last).to_have_class(re.compile(r"\bcurrent\b"))
    expect(last).to_be_in_viewport()
    expect(jump).to_be_hidden()

    # Reading (the default for an admin who did not come from the annotation queue): short, no controls.
    page.goto(dialogue_url)
    live = page.locator(".dialogue-live")
    expect(live).to_have_attribute("data-mode", "reading")
    expect(page.locator(".annot-form").first).to_be_attached()  # loaded for an annotating role, but hidden
    expect(page.locator(".annot-form").first).to_be_hidden()
    height = page_height(page)
    assert height < READING_LIMIT_PX, f"an 18-turn dialogue in reading mode is {height} px tall at 1366 px"
    snap("80-dialogue-reading")

    # m: annotating, every turn with its controls; the address keeps the mode for a reload.
    page.locator("h1").click()
    page.keyboard.press("m")
    expect(live).to_have_attribute("data-mode", "annotating")
    expect(page).to_have_url(re.compile(r"\?annotate=1$"))
    forms = page.locator("ol.timeline .annot-form")
    expect(forms).to_have_count(count)
    expect(forms.first).to_be_visible()
    expect(page.get_by_role("link", name="Annotating", exact=True)).to_have_attribute("aria-current", "true")
    assert page_height(page) > height
    snap("81-dialogue-annotating")

    # the keys of annotating work there: 1 toggles the first label of the current turn
    page.keyboard.press("j")
    first_label = turns(page).first.locator("[data-label-key='1']")
    page.keyboard.press("1")
    expect(first_label).to_be_checked()
    expect(turns(page).first.locator(".annot-status")).to_contain_text("Saved")
    page.keyboard.press("1")
    expect(first_label).not_to_be_checked()

    # m again: back to reading, where the digits label nothing
    page.keyboard.press("m")
    expect(live).to_have_attribute("data-mode", "reading")
    expect(forms.first).to_be_hidden()
    page.keyboard.press("1")
    expect(first_label).not_to_be_checked()

    # The toggle's links do the same with the mouse, and a reload keeps the mode.
    page.get_by_role("link", name="Annotating", exact=True).click()
    expect(live).to_have_attribute("data-mode", "annotating")
    page.reload()
    expect(page.locator(".dialogue-live")).to_have_attribute("data-mode", "annotating")
    expect(page.locator("ol.timeline .annot-form").first).to_be_visible()
    page.get_by_role("link", name="Reading", exact=True).click()
    expect(page.locator(".dialogue-live")).to_have_attribute("data-mode", "reading")

    # The keyboard help lists m, and nothing in it overlaps: every key column fits its cell.
    page.keyboard.press("?")
    help_box = page.locator("#keys-help")
    expect(help_box).to_contain_text("switch between reading and annotating")
    overflowing = help_box.evaluate(
        "(el) => [...el.querySelectorAll('dt, dd')].filter((c) => c.scrollWidth > c.clientWidth).length"
    )
    assert overflowing == 0
    snap("82-dialogue-keys-help")
