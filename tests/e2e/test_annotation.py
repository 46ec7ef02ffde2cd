"""Annotating in the browser: the queue sends you to a dialogue, labels and quality go on turns with the keyboard
and are saved as you go, a correction needs its reason, the decision is taken with a key and submitted, and a
curator reads the run's agreement. Screenshots 50-53."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD
from .test_browser import log_in
from .test_experiments import finished_dialogue

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)


def test_annotate_with_the_keyboard_and_submit(page: Page, snap, served, console):
    console.allow("status of 400")  # a correction without its reason is refused on purpose
    log_in(page, "admin", ADMIN_PASSWORD)
    finished_dialogue(page)
    run_id = re.search(r"/runs/(\d+)/", page.locator("nav.crumbs a").nth(1).get_attribute("href")).group(1)

    page.get_by_role("link", name="Annotate", exact=True).click()
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible()
    snap("50-annotation-queue")
    page.goto(f"/annotate/next/?run={run_id}")
    expect(page).to_have_url(re.compile(r"/dialogues/\d+/\?annotate=1"))
    slots = page.locator("ol.timeline .annot-slot form")
    expect(slots.first).to_be_visible()
    expect(page.locator(".annot-decision")).to_contain_text("Your annotation")

    # j to the first turn, 1 toggles the first label, Shift+3 sets the quality: each is saved at once
    page.locator("h1").click()
    page.keyboard.press("j")
    first = page.locator("ol.timeline > li.turn").first
    page.keyboard.press("1")
    expect(first.locator(".annot-status")).to_contain_text("Saved")
    expect(first.locator("label.chip").first.locator("input")).to_be_checked()
    page.keyboard.press("Shift+Digit3")
    expect(first.locator('input[data-quality="3"]')).to_be_checked()
    expect(first.locator(".annot-status")).to_contain_text("Saved")

    # the second turn: a correction without a reason is refused in place and keeps the text
    page.keyboard.press("j")
    second = page.locator("ol.timeline > li.turn").nth(1)
    page.keyboard.press("c")
    text = second.locator("textarea")
    expect(text).to_be_focused()
    text.fill("Could we share: six seats each, and swap on the way back?")
    second.locator('input[name="note"]').click()  # leaving the text field saves
    expect(second.locator(".annot-slot .error")).to_contain_text("say why the text is corrected")
    expect(second.locator("textarea")).to_have_value("Could we share: six seats each, and swap on the way back?")
    second.locator('input[name="correction_reason"]').fill("a concrete offer")
    second.locator('input[name="note"]').click()
    expect(second.locator(".annot-status")).to_contain_text("Saved")
    expect(second.locator(".badge.corrected")).to_be_visible()
    snap("51-turns-annotated")

    # a accepts (saved), then Submit
    page.locator("h1").click()
    page.keyboard.press("a")
    expect(page.locator(".annot-decision")).to_contain_text("Saved.")
    expect(page.locator('.decision-form input[value="accept"]')).to_be_checked()
    page.locator(".decision-form").get_by_role("button", name="Submit").click()
    expect(page.locator(".annot-decision")).to_contain_text("Submitted")
    snap("52-decision-submitted")

    # the curator's view of the run: agreement (one annotator: undefined, said so) and the adjudication form
    page.goto(f"/runs/{run_id}/agreement/")
    expect(page.get_by_role("heading", name=re.compile("Agreement"))).to_be_visible()
    expect(page.locator("body")).to_contain_text("undefined")
    snap("53-agreement")
