"""Benchmarking a social agent in the browser: two endpoints of the test LLM server stand in for the agent under
test and a reference model; an evaluation run over the hard tasks (who speaks first from an uploaded partition
file; an order too short for the paper's indices is refused with the reason), played to the end, judged from its
report, and shown on the leaderboard. Screenshots 74–76.

It plays the demo's hard tasks (library_roof_fund among them), so it sorts after test_dialogues.py, which counts the
finished dialogues of that scenario on this shared server."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from ..support.llm_answers import action
from ..support.llm_server import ScriptedLLMServer
from .conftest import ADMIN_PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=90_000)
DEMO_COMBOS = [f"omega-demo-task-0{i}" for i in range(1, 8)]


def speaker(name: str):
    def answer(purpose: str, body: dict) -> str:
        turn = int(re.findall(r"You are at Turn #(\d+)", body["messages"][-1]["content"])[-1])
        return action("", "leave") if turn >= 5 else action(f"{name} <b>says</b> something at turn {turn}")

    return answer


def fill(page: Page, agent: ScriptedLLMServer, reference: ScriptedLLMServer) -> None:
    page.get_by_role("radio", name="against a reference model").check()
    page.get_by_label("Agent under test: served model name").fill("agent-model")
    page.get_by_label("Agent's server(s)").fill(agent.base_url)
    page.get_by_label("Reference model: served model name").fill("ref-model")
    page.get_by_label("Reference model's server(s)").fill(reference.base_url)
    page.locator("select[name=split]").select_option("train")  # the demo tasks are training tasks
    page.locator("select[name=hard]").select_option("1")
    page.get_by_label("Turn limit").fill("8")


def test_benchmark_an_agent_against_a_reference(page: Page, snap, tmp_path, console):
    console.allow("status of 400")  # the refused order file answers 400
    order = tmp_path / "demo-order.json"
    order.write_text(json.dumps(DEMO_COMBOS))
    first = tmp_path / "reference-first.txt"
    first.write_text("# the reference model opens these\nomega-demo-task-02\n")
    with (
        ScriptedLLMServer("agent-model", responder=speaker("Agent")) as agent,
        ScriptedLLMServer("ref-model", responder=speaker("Reference")) as reference,
    ):
        log_in(page, "admin", ADMIN_PASSWORD)
        page.goto("/runs/")
        page.get_by_role("link", name="New evaluation run").click()
        fill(page, agent, reference)
        page.get_by_label("Task order file").set_input_files(str(order))
        page.get_by_role("button", name="Start the evaluation run").click()
        expect(page.get_by_role("alert")).to_contain_text("out of range for an order of 7 tasks")  # nothing started
        fill(page, agent, reference)
        page.get_by_label("Partition file").set_input_files(str(first))
        page.get_by_role("button", name="Start the evaluation run").click()
        expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
        expect(page.locator(".run-progress .badge").first).to_have_text("finished")
        page.reload()  # the dialogue list and the evaluation panel as they are now
        facts = page.locator("section.benchmark-facts")
        expect(facts).to_contain_text("against a reference model")
        expect(facts).to_contain_text("reference-first.txt")
        expect(facts).to_contain_text("3 (3 hard) · 3 of the train split")
        # what both servers could do, probed before the run and recorded on it
        profiles = page.locator(".server-profiles table")
        expect(profiles.locator("tbody tr:not(.profile-notes)")).to_have_count(2)
        expect(profiles).to_contain_text(agent.base_url)
        expect(profiles).to_contain_text(reference.base_url)
        expect(profiles).to_contain_text("json_schema enforced")
        snap("74-evaluation-run")

        # the episodes: each side played by its own server, text escaped
        page.locator("#dialogue-results a.codename").first.click()
        expect(page.locator(".timeline .turn").first).to_contain_text(re.compile(r"(Agent|Reference) <b>says</b>"))

        # judged from the report (the served app has no judge configured: the simulated judge, labelled)
        page.go_back()
        page.get_by_role("link", name="Report", exact=True).click()
        page.get_by_role("button", name="Evaluate").click()
        expect(page.locator(".evaluation-job").first).to_have_attribute("data-status", "done")
        page.reload()
        expect(page.locator("table.sif-table")).to_contain_text("Agent under test")
        expect(page.locator("table.episode-table")).to_contain_text("only the agent under test is scored")
        expect(page.locator("table.episode-table tbody tr").nth(1)).to_have_text(re.compile(r"^hard\s*3\s*\d"))
        snap("75-evaluation-run-report")

        page.goto("/evaluations/leaderboard/")
        row = page.locator("table.leaderboard tbody tr").filter(has_text="agent-model")
        expect(row).to_contain_text("vs ref-model")
        expect(row).to_contain_text("3 / 3")
        expect(row.locator("td.num").nth(1)).to_have_text(re.compile(r"^\d+\.\d\d ± \d+\.\d\d$"))
        snap("76-leaderboard")
    assert {r["purpose"] for r in agent.requests if r["purpose"]} == {"action.native"}
    assert any(r["purpose"] for r in reference.requests)
