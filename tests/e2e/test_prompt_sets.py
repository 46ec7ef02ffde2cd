"""Prompt sets in the browser: copy the built-in set and edit it (an invalid edit refused with template and line,
nothing saved), read the new set and its difference, then a counterfactual batch of the built-in set against the
edited one on the same seeds, and its comparison. Screenshots prompts-*."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, finished_dialogue, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)

NAME = "Terse SSI"
ADDED = "Keep it to one or two sentences."


def test_edit_a_copy_then_run_it_against_the_builtin_set(page: Page, snap, served, console):
    console.allow("status of 400")  # the invalid edit is refused on purpose
    log_in(page, "admin", ADMIN_PASSWORD)
    parent_url = finished_dialogue(page)

    page.get_by_role("link", name="Prompts", exact=True).click()
    expect(page.get_by_role("heading", name="Prompts", exact=True)).to_be_visible()
    builtin_row = page.locator("table.prompt-sets tbody tr").first
    expect(builtin_row).to_contain_text("built-in")
    snap("prompts-01-list")
    builtin_row.get_by_role("link", name="built-in", exact=True).click()
    expect(page.locator("#t-rating mark.placeholder").first).to_be_visible()
    snap("prompts-02-builtin")

    page.get_by_role("link", name="Copy and edit").click()
    page.get_by_label("Name").fill(NAME)
    ssi = page.locator("#id_t_ssi_instruction")
    ssi.click()
    ssi.press("Control+End")  # after the text's final line end: the new line is line 2
    ssi.type(f"{ADDED} Mention $goal.")  # $goal is not a placeholder of this template
    page.get_by_role("button", name="Save the new set").click()
    alert = page.locator(".error[role=alert]").first
    expect(alert).to_contain_text("Nothing was saved.")
    expect(alert).to_contain_text("ssi_instruction, line 2: unknown placeholder $goal")
    snap("prompts-03-refused")

    text = page.locator("#id_t_ssi_instruction").input_value()
    page.locator("#id_t_ssi_instruction").fill(text.replace(" Mention $goal.", ""))
    page.get_by_role("button", name="Save the new set").click()
    expect(page.get_by_role("heading", name=re.compile(NAME))).to_be_visible()
    expect(page.locator("#t-ssi_instruction pre")).to_contain_text(ADDED)
    page.get_by_role("button", name="Show the difference").click()
    expect(page.locator(".pagehead")).to_contain_text("1 template differ")
    # this set on the left, the built-in one on the right: the added line has no counterpart
    expect(page.locator("table.diff tr.diff-delete td.diff-left")).to_contain_text(ADDED)
    snap("prompts-04-diff")

    # The same seeds with each set: a counterfactual batch from the start of the parent dialogue.
    page.goto(parent_url)
    page.get_by_role("link", name="Fork…").click()
    page.get_by_label("Share turns up to").fill("-1")
    page.get_by_label("Counterfactual batch: N seeds × settings A and B").check()
    page.get_by_label("Seeds per setting (batch)").fill("2")
    page.locator(".arm-b").get_by_label("Prompt set").select_option(NAME)
    snap("prompts-05-batch-form")
    page.get_by_role("button", name="Start the fork").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator(".experiment-stats")).to_contain_text("prompt set")
    expect(page.locator(".experiment-stats")).to_contain_text(NAME)
    expect(page.locator(".run-progress .tags .badge").first).to_have_text("finished", timeout=90_000)
    for _ in range(60):
        page.reload()
        if page.locator(".experiment-stats").inner_text().count("2 / 2") == 2:
            break
        page.wait_for_timeout(1000)
    assert page.locator(".experiment-stats").inner_text().count("2 / 2") == 2
    snap("prompts-06-batch-outcome")

    # A fork of setting B beside the parent: its page names the set it used.
    page.locator(".experiment details summary").click()
    b_fork = page.locator(".experiment details tbody tr").filter(has_text="B").first
    b_fork.get_by_role("link", name="compare with the parent").click()
    expect(page.get_by_role("heading", name=re.compile(r"Compare dialogue #\d+ and #\d+"))).to_be_visible()
    snap("prompts-07-compare")

    page.get_by_role("link", name="Prompts", exact=True).click()
    row = page.locator("table.prompt-sets tbody tr").filter(has_text=NAME)
    expect(row.locator("td.num").last).to_have_text("2")  # two fork settings used it
