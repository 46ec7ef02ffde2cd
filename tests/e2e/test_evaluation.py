"""Evaluation in the browser: a researcher computes S_div for a finished dialogue from its page; each agent's score
and similarity heatmap appear (hover labels escaped). Screenshot 70."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD
from .test_browser import log_in
from .test_experiments import finished_dialogue

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=90_000)


def test_compute_s_div_and_read_the_heatmaps(page: Page, snap, artifacts):
    log_in(page, "admin", ADMIN_PASSWORD)
    finished_dialogue(page)
    panel = page.locator("section.sif")
    expect(panel).to_contain_text("Not evaluated yet")
    panel.get_by_role("button", name="Compute S_div").click()
    expect(panel.locator(".score-big")).to_have_count(2)
    expect(panel.locator(".heatmap .main-svg").first).to_be_visible()
    panel.scroll_into_view_if_needed()
    cell = panel.locator(".heatmap").first
    box = cell.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    expect(page.locator(".hoverlayer .hovertext").first).to_contain_text("cosine similarity")
    snap("70-dialogue-sdiv-heatmaps")
    panel.screenshot(path=artifacts / "71-sif-panel-1366.png", animations="disabled")

    # the run: S_div for all its finished dialogues, the table and the dialogues sorted by S_div with goal_c
    page.locator("nav.crumbs a").nth(1).click()
    run_panel = page.locator("section.run-sif")
    run_panel.get_by_role("button", name=re.compile("Compute S_div|Evaluate again")).click()
    expect(run_panel.locator("table.sif-table")).to_be_visible()
    expect(run_panel.locator(".plot .main-svg").first).to_be_visible()
    expect(run_panel).not_to_contain_text("Computing on a worker")
    snap("72-run-sdiv")
