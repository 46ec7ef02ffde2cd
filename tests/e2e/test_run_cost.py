"""What a run costs the model server (ADR 0028): the launcher's estimate names the prompt tokens needing prefill
before the run, and the run's page shows the measured figures by call kind after it. The simulated expert reports
no cached tokens, so the page says the prefill is estimated and how a vLLM server would report it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CODENAME = "field_trip_seats"


def test_the_launcher_estimates_prefill_and_the_run_page_shows_the_cost(page: Page, snap):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/runs/new/")
    page.get_by_placeholder("codename, scenario, goal, character…").fill(CODENAME)
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("1 task selected")
    expect(estimate).to_contain_text(re.compile(r"prompt tokens \(~[\d.]+M needing prefill, 0\.\d\d of them"))
    expect(estimate).to_contain_text("sequences")
    page.get_by_label("Run name").fill("Cost of one task")
    snap("80-launcher-prefill-estimate")
    button = page.get_by_role("button", name="Start the run")
    box = button.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator(".run-progress")).to_have_attribute("data-status", "finished", timeout=90_000)
    page.reload()
    panel = page.locator("#run-cost")
    expect(panel).to_contain_text("Cost on the model server")
    expect(panel).to_contain_text("The simulated expert has no cache to report")
    expect(panel).to_contain_text("--enable-prompt-tokens-details")
    expect(panel.locator("tbody th")).to_contain_text(["action", "rating"])
    expect(panel).to_contain_text(re.compile(r"Per settled attempt \(\d+\): [\d.]+ requests"))
    panel.scroll_into_view_if_needed()
    snap("81-run-cost-panel")
