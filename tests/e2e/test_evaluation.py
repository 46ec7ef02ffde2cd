"""Evaluation in the browser: a researcher evaluates a finished dialogue from its page (S_div, the relevance judge,
SOTOPIA-EVAL; the simulated judge, labelled); each agent's scores, the heatmap beside the relevance strip with hover
labels escaped, and the SOTOPIA-EVAL reasons appear. Then the run's report (tables, figures, CSV and PNG/SVG
downloads) and two runs compared. Screenshots 70–75."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, finished_dialogue, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=90_000)


def test_evaluate_a_dialogue_and_read_the_run_report(page: Page, snap, artifacts):
    log_in(page, "admin", ADMIN_PASSWORD)
    finished_dialogue(page)
    panel = page.locator("section.sif")
    expect(panel).to_contain_text("not computed")
    panel.get_by_role("button", name="Evaluate").click()
    expect(panel.locator(".evaluation-job")).to_have_attribute("data-status", "done")
    expect(panel).to_contain_text("simulated: not a language model")
    expect(panel).not_to_contain_text("could not score")  # every item judged: the problems would be listed here
    for label in ("S_div", "S_rel", "S_sif"):
        expect(panel.locator(f".sif-scores dt:text-is('{label}') + dd").first).to_have_text(re.compile(r"^\d+\.\d$"))
    expect(panel.locator("table.episode-agent")).to_have_count(2)
    expect(panel.locator(".heatmap .main-svg").first).to_be_visible()
    panel.scroll_into_view_if_needed()
    heatmap = panel.locator(".heatmap").first
    box = heatmap.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.35)
    expect(page.locator(".hoverlayer .hovertext").first).to_contain_text("cosine similarity")
    snap("70-dialogue-evaluation")
    panel.screenshot(path=artifacts / "71-evaluation-panel-1366.png", animations="disabled")
    panel.locator(".relevance-list summary").first.click()
    expect(panel.locator(".relevance-list li").first).to_contain_text("Simulated judge")

    # the run's report: evaluate every kept dialogue, then the tables and the paper's figures
    page.locator("nav.crumbs a").nth(1).click()
    run_url = page.url
    page.get_by_role("link", name="Full report").click()
    expect(page.get_by_role("heading", name=re.compile("^Report: "))).to_be_visible()
    page.get_by_role("button", name="Evaluate").click()
    expect(page.locator(".evaluation-job").first).to_have_attribute("data-status", "done")
    page.reload()
    expect(page.locator("table.sif-table")).to_be_visible()
    expect(page.locator("#usable")).to_contain_text(re.compile(r"Usable ratio.*\d+\.\d%", re.S))  # records, Table 4
    expect(page.locator("#usable")).to_contain_text("Late agreements")
    expect(page.locator("table.episode-table tbody tr").first).to_have_text(re.compile(r"^all\s*1\s*\d"))  # one task
    for figure in ("fig-sdiv", "fig-srel", "fig-goal", "fig-strategy-ratings", "fig-strategy-use"):
        expect(page.locator(f"#{figure} .main-svg").first).to_be_visible()
    snap("72-run-report")
    with page.expect_download() as csv_download:
        page.locator("h2:has-text('SOTOPIA-EVAL') a:text('CSV')").click()
    assert csv_download.value.suggested_filename.endswith("-sotopia.csv")
    for kind in ("png", "svg"):
        with page.expect_download() as image:
            page.locator(f"button[data-target='fig-strategy-use'][data-download='{kind}']").click()
        assert image.value.suggested_filename == f"strategy-use.{kind}"

    # a second run of the same task, then both compared in Table 4's layout with the paired tests
    page.goto(run_url)
    first_run = re.search(r"/runs/(\d+)/", run_url).group(1)
    finished_dialogue(page)
    second_run = re.search(r"/runs/(\d+)/", page.locator("nav.crumbs a").nth(1).get_attribute("href")).group(1)
    page.goto(f"/evaluations/compare/?run={first_run}&run={second_run}")
    expect(page.locator("table.compare-table tbody tr")).to_have_count(2)
    expect(page.locator("table.compare-table td.usable-ratio").first).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("table.paired-table")).to_contain_text("fewer than 2 shared tasks")
    snap("73-runs-compared")
