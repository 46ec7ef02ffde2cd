"""A researcher's first real run, from the browser: the launcher checks llama-server and shows what it can do, the
run is launched with the mouse, its turns arrive live, and what it stored holds up as from the CLI."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ..support.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, WIDE, Console, log_in
from ..support.processes import serve
from ..support.real_model import MODEL_NAME, real_model_unavailable, real_server
from .checks import JUDGE_SAMPLES, MAX_TOKENS, MAX_TURNS, check_run
from .conftest import ADMIN_PASSWORD

pytestmark = [pytest.mark.real_model, pytest.mark.slow, pytest.mark.timeout(3600)]


def test_a_run_launched_from_the_browser_on_llama_server(app, real_model, tmp_path):
    if not CHROMIUM.exists():
        real_model_unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (make e2e-browser installs it)")
    from playwright.sync_api import sync_playwright

    with (
        real_server("llama-server", real_model, tmp_path) as model_server,
        serve({**app.env, "OMEGA_LLM_BASE_URLS": model_server.url, "OMEGA_LLM_MODEL": MODEL_NAME}) as served,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=served.url, viewport=LAPTOP)
        context.set_default_timeout(30_000)
        page = context.new_page()
        console = Console()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)

        def snap(name: str) -> None:
            page.screenshot(path=tmp_path / f"{name}-1366.png", full_page=True, animations="disabled")
            page.set_viewport_size(WIDE)
            page.screenshot(path=tmp_path / f"{name}-1920.png", full_page=True, animations="disabled")
            page.set_viewport_size(LAPTOP)

        log_in(page, "admin", ADMIN_PASSWORD)
        page.goto("/runs/new/")
        # the launcher probes the server and shows what it can do before anything is launched
        servers = page.locator(".server-check")
        expect(servers).to_contain_text("llama.cpp (llama-server)", timeout=60_000)
        expect(servers).to_contain_text("up to 2 per request")  # its two slots: the 5 judge samples are split
        page.get_by_placeholder("codename, scenario, goal, character…").fill(app.hard_codename)
        page.get_by_label("Hard").select_option(label="hard only")
        page.get_by_label("Random sample of").fill("1")
        page.get_by_label("Random sample of").press("Tab")  # the estimate follows a changed field
        expect(page.locator("#estimate")).to_contain_text("1 task selected")
        page.get_by_label("Variant").select_option("nsi")
        page.get_by_label("Attempts per task").fill("1")
        page.get_by_label("Native turns at the start").fill("1")
        page.get_by_label("Turn limit").fill(str(MAX_TURNS))
        page.get_by_label("Judge samples").fill(str(JUDGE_SAMPLES))
        page.get_by_label("Max tokens").fill(str(MAX_TOKENS))
        page.get_by_label("Run name").fill("first real run")
        snap("real-model-launcher")
        page.get_by_role("button", name="Start the run").click()
        expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
        run = int(re.search(r"/runs/(\d+)/$", page.url).group(1))
        expect(page.locator(".run-progress .badge").first).to_have_text("running")
        expect(page.locator("details.config").first).to_contain_text("llama.cpp (llama-server)")  # Servers
        # turns arrive live while the model writes them, without a reload
        expect(page.locator(".run-progress .badge").first).to_have_text("finished", timeout=1_500_000)
        # the dialogue list follows the run's end without a reload
        status = page.locator("#dialogue-results .badge[class*='status-']").first
        expect(status).to_have_text(re.compile("finished|failed"))
        snap("real-model-run")
        page.locator("#dialogue-results a.codename").first.click()
        expect(page.locator(".dialogue-state .badge").first).to_have_text(re.compile("finished|failed"))
        snap("real-model-dialogue")
        context.close()
        browser.close()
        assert console.errors == [], "the browser reported errors:\n" + "\n".join(console.errors)
    (facts,) = app.facts([run])
    assert facts["variant"] == "nsi" and len(facts["dialogues"]) == 1
    counts = check_run(facts, "llama-server (browser)")
    assert counts["ratings"] > 0, counts
