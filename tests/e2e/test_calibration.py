"""Calibrating the judges in the browser: a researcher draws a run's calibration queue, two annotators take its
items one after the other and answer the step-rating judge's questions blind (the judge's numbers appear only once
they saved), and the run's Calibration page shows the agreement with its intervals, the scatter of judge against
people with the identity line, and what the people's ratings would have changed. Screenshots 60-63."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from ..support.browser import LAPTOP
from ..support.processes import manage
from .conftest import ADMIN_PASSWORD, finished_dialogue, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)
ITEMS = 3
PASSWORD = "e2e-calibration-password-1"
RATERS = ("ann_cal", "bob_cal")
CREATE_RATERS = f"""
from django.contrib.auth.models import Group, User
for name in {RATERS!r}:
    user, _ = User.objects.get_or_create(username=name)
    user.set_password({PASSWORD!r})
    user.save()
    user.groups.add(Group.objects.get(name="annotator"))
"""


def answer_queue(page: Page, run_id: str, offsets: dict[str, int], snap=None) -> None:
    """Take the queue's items in turn and answer every step by clicking the radio buttons."""
    page.goto(f"/runs/{run_id}/calibration-queue/")
    page.locator("#calibration-next").click()
    for item in range(ITEMS):
        expect(page).to_have_url(re.compile(r"/turns/\d+/judge-rating/\?queue="))
        expect(page.locator(".blind-note")).to_contain_text("hidden until you save")
        expect(page.locator(".judge-numbers")).not_to_contain_text("goal_c")
        if snap is not None and item == 0:
            snap("61-calibration-rating-blind")
        form = page.locator(".judge-rating form")
        for step, offset in offsets.items():
            value = min(10, max(0, offset + item)) if step != "step5" else offset
            form.locator(f'input[name="{step}"][value="{value}"]').click()
        form.locator('input[name="relevance"][value="0.5"]').click()
        form.get_by_role("button", name="Save and go on").click()
        expect(page.locator(".judge-rating .good")).to_have_text("Saved")
        expect(page.locator(".judge-numbers")).to_contain_text("goal_c")  # blind no more: this rater has answered
        if snap is not None and item == 0:
            snap("62-calibration-rating-saved")
        page.locator("#jr-next").click()
    expect(page).to_have_url(re.compile(r"/calibration-queue/$"))
    expect(page.locator("body")).to_contain_text("Nothing left for you")


def test_two_annotators_calibrate_the_step_rating_judge(page: Page, browser, snap, served, console):
    result = manage(served.env, "shell", "-c", CREATE_RATERS)
    assert result.returncode == 0, result.stderr
    log_in(page, "admin", ADMIN_PASSWORD)
    finished_dialogue(page)
    run_id = re.search(r"/runs/(\d+)/", page.locator("nav.crumbs a").nth(1).get_attribute("href")).group(1)

    page.goto(f"/runs/{run_id}/calibration-queue/")
    page.locator("#queue-target").fill(str(ITEMS))
    page.locator("#queue-people").fill("2")
    page.locator("#queue-draw").click()
    expect(page.locator("table")).to_contain_text("final rating")
    expect(page.locator("h2").filter(has_text="with their 2 people")).to_contain_text(f"{ITEMS} turns")
    snap("60-calibration-queue")

    # two annotators, each in a browser of their own, different readings of the same turns
    for name, offsets, shots in (
        (RATERS[0], {"step1": 4, "step2": 5, "step3": 6, "step4": 7, "step5": 1}, snap),
        (RATERS[1], {"step1": 6, "step2": 6, "step3": 8, "step4": 8, "step5": 1}, None),
    ):
        if shots is None:
            context = browser.new_context(base_url=served.url, viewport=LAPTOP)
            rater = context.new_page()
            rater.on("pageerror", console.on_page_error)
        else:
            context, rater = None, page
            page.context.clear_cookies()  # the admin's page becomes the first rater's
        log_in(rater, name, PASSWORD)
        answer_queue(rater, run_id, offsets, shots)
        if context is not None:
            context.close()

    page.context.clear_cookies()
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"/runs/{run_id}/calibration-queue/")
    expect(page.locator("h2").filter(has_text="with their 2 people")).to_contain_text(f"{ITEMS} with their")
    page.get_by_role("link", name="Calibration page").click()
    expect(page.get_by_role("heading", name=re.compile("Calibration"))).to_be_visible()
    step = page.locator(".calibration-judge").first
    expect(step).to_contain_text("step rating judge")
    goal_c = step.locator("tr").filter(has_text="goal_c").first
    expect(goal_c.locator("td").first).to_have_text(str(ITEMS))  # the items
    expect(goal_c.locator("td").nth(1)).to_have_text("2")  # the people
    expect(page.locator(".pagehead")).to_contain_text("1000 resamples, seed 0")
    # the scatter with the identity line: two traces drawn by plotly
    expect(page.locator("#scatter-0-goal_c .main-svg").first).to_be_visible()
    expect(page.locator("#scatter-0-goal_c .scatterlayer .trace")).to_have_count(2)
    changes = page.locator("#decision-changes")
    expect(changes).to_contain_text("Strategy (Eq. 3)")
    expect(changes.locator("#filter-changes")).to_contain_text("#")
    snap("63-calibration-page")
