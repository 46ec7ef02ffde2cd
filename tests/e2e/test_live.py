"""Live pages that never lose a click, never miss a row and never show a stale result (issue 27): Cancel and Pause
clicked with the mouse while the run's card is being redrawn by live updates, a runs list that gains a run launched
after it opened, a report and a run page that draw themselves again when what they count ends, and the launcher's
confirmation of a large run. Every click that matters is a real mouse click at the centre of the button's box
(`page.mouse`); each test fails on any console error, and on idiomorph's warning of duplicate ids. Screenshots go to
a temporary directory, never into the repository."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from ..support.processes import manage
from .conftest import ADMIN_PASSWORD, CONFIRM_TASKS, LAPTOP, WIDE, log_in, mark_document

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)

DEMO = "omega-demo"  # the demo collection
DEMO_TASKS = 7  # over CONFIRM_TASKS: a launch of all of them is confirmed first
ROOF = "library_roof_fund"  # two demo tasks
LOOPS = 10  # clicks in a row that must each work the first time


@pytest.fixture
def watched(page: Page) -> Iterator[Page]:
    """The page, also failing on idiomorph's warning that a morph met duplicate ids (two elements with one id is
    how a live update used to leave a stale copy of a card behind, whose buttons then took the clicks)."""
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if "duplicate" in m.text.lower() else None)
    yield page
    assert warnings == [], "\n".join(warnings)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live-screenshots")


def snap(page: Page, shots: Path, name: str) -> None:
    """Screenshots at laptop and wide-screen size, into a temporary directory (kept out of the repository)."""
    page.screenshot(path=shots / f"{name}-1366.png", full_page=True, animations="disabled")
    page.set_viewport_size(WIDE)
    page.screenshot(path=shots / f"{name}-1920.png", full_page=True, animations="disabled")
    page.set_viewport_size(LAPTOP)


def mouse_click(page: Page, target: Locator) -> None:
    """A real click: the pointer moves to the centre of the element's box, presses and releases there."""
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    assert box is not None, "the button has no box"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.up()


def database(served, code: str):
    """What the served app's database says now (through manage.py shell: the test never opens it itself)."""
    result = manage(served.env, "shell", "-c", f"import json\n{code}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def demo_tasks_only(page: Page) -> None:
    """The demo collection (other tests import SOTOPIA's 450 tasks into the same library)."""
    page.get_by_label("Collection").select_option(DEMO)
    expect(page.locator("#estimate")).to_contain_text(f"{DEMO_TASKS} tasks selected")


def launch(page: Page, *, name: str, q: str = "", paused: bool = False, in_flight: int | None = None) -> int:
    """Launch a run of demo tasks with the simulated expert from the launcher (confirming it when it is large)."""
    page.goto("/runs/new/")
    expect(page.locator("#estimate")).to_contain_text("Estimate:")
    demo_tasks_only(page)
    if q:
        page.get_by_placeholder("codename, scenario, goal, character…").fill(q)
        expect(page.locator("#estimate")).not_to_contain_text(f"{DEMO_TASKS} tasks selected")
    page.get_by_label("Run name").fill(name)
    if in_flight:
        page.get_by_label("Dialogues in flight").fill(str(in_flight))
    if paused:
        page.get_by_label("Step through by hand (dialogues start paused)").check()
    page.get_by_role("button", name="Start the run").click()
    expect(page).to_have_url(re.compile(r"/runs/(new|\d+)/$"))
    if page.url.endswith("/new/"):
        page.get_by_role("button", name=re.compile(r"^Start the run of \d+ tasks$")).click()
        expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    return int(re.search(r"/runs/(\d+)/$", page.url).group(1))


class RunSocket:
    """Counts the fragments the run page's websocket brings, so a click is made while the card is being redrawn."""

    def __init__(self, page: Page) -> None:
        self.frames = 0
        page.on("websocket", self._opened)

    def _opened(self, ws) -> None:
        if re.search(r"/ws/runs/\d+/", ws.url):
            ws.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        self.frames += 1

    def wait_for_updates(self, page: Page, more: int) -> None:
        target = self.frames + more
        for _ in range(600):
            if self.frames >= target:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"the card received {self.frames} updates, waited for {target}")


def one_card(page: Page, run_id: int) -> Locator:
    cards = page.locator(f'[id="run-progress-{run_id}"]')
    expect(cards).to_have_count(1)
    return cards


def posts(page: Page, pattern: str) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and re.search(pattern, r.url) else None)
    return sent


@pytest.mark.parametrize("action", ["cancel", "pause"])
def test_a_button_on_a_moving_card_works_on_the_first_click_every_time(watched: Page, action: str):
    page = watched
    log_in(page, "admin", ADMIN_PASSWORD)
    page.on("dialog", lambda dialog: dialog.accept())  # "Cancel run #N? …"
    updates = RunSocket(page)
    sent = posts(page, rf"/runs/\d+/{action}/$")
    for attempt in range(LOOPS):
        # a run of the seven demo tasks, one dialogue at a time: it moves for a good while
        run_id = launch(page, name=f"{action} {attempt}", in_flight=1)
        card = one_card(page, run_id)
        expect(card).to_have_attribute("data-status", "running")
        updates.wait_for_updates(page, 3)  # the card is being redrawn as the run moves
        before = len(sent)
        mouse_click(page, card.get_by_role("button", name=action.capitalize()))
        expected = "cancelled" if action == "cancel" else "paused"
        expect(one_card(page, run_id)).to_have_attribute("data-status", expected)
        assert len(sent) == before + 1, f"attempt {attempt}: {len(sent) - before} requests for one click"
        page.wait_for_timeout(800)  # the live updates that follow the click: still one card, still the same status
        expect(one_card(page, run_id)).to_have_attribute("data-status", expected)
        if action == "pause":  # then cancelled for good, from the card now at rest
            mouse_click(page, one_card(page, run_id).get_by_role("button", name="Cancel"))
            expect(one_card(page, run_id)).to_have_attribute("data-status", "cancelled")
        expect(page.locator(f"#run-progress-{run_id} button")).to_have_count(0)  # nothing left to click


def test_a_runs_list_opened_before_a_launch_shows_the_new_run_moving(watched: Page, served):
    page = watched
    log_in(page, "admin", ADMIN_PASSWORD)
    listing = page.context.new_page()  # a second tab, on the runs list before the launch
    errors: list[str] = []
    listing.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    listing.on("pageerror", lambda e: errors.append(str(e)))
    listing.goto("/runs/")
    mark = mark_document(listing)
    rows_before = listing.locator("#run-list > .run-row").evaluate_all("rows => rows.map(r => r.id)")

    run_id = launch(page, name="appears in the list", q=ROOF, in_flight=1)
    row = listing.locator(f"#run-row-{run_id}")
    expect(row).to_be_visible()
    assert listing.locator("#run-list > .run-row").first.get_attribute("id") == f"run-row-{run_id}"  # newest first
    turns = row.locator(".progress-facts div:has(dt:text-is('turns')) dd")
    seen = []
    for _ in range(1800):  # the row's turns as they come, until the run is over
        value = int(turns.inner_text())
        if not seen or seen[-1] != value:
            seen.append(value)
        if row.get_attribute("data-status") == "finished":
            break
        listing.wait_for_timeout(100)
    expect(row).to_have_attribute("data-status", "finished")
    assert len(seen) > 2 and seen == sorted(seen), f"the row's turns did not move on: {seen}"
    expect(row.locator(".progress-facts")).to_contain_text("2 / 2")
    final = database(
        served, f"from dialogues.runs.models import Turn; print(Turn.objects.filter(dialogue__run={run_id}).count())"
    )
    expect(turns).to_have_text(str(final))
    expect(listing.locator(f'[id="run-row-{run_id}"]')).to_have_count(1)
    rows_after = listing.locator("#run-list > .run-row").evaluate_all("rows => rows.map(r => r.id)")
    assert rows_after == [f"run-row-{run_id}", *rows_before]  # the rows it had, in their order, below the new one
    assert listing.evaluate("() => window.e2eDocument") == mark, "the list was reloaded"
    assert errors == [], "\n".join(errors)


def test_the_run_page_counts_what_the_database_holds_once_the_run_ends(watched: Page, served, shots):
    page = watched
    log_in(page, "admin", ADMIN_PASSWORD)
    run_id = launch(page, name="counted at the end", in_flight=2)
    mark = mark_document(page)
    card = one_card(page, run_id)
    expect(card).to_have_attribute("data-status", "running")
    expect(card.locator(".progress-facts")).not_to_contain_text("turns0")
    snap(page, shots, "run-page-mid-run")
    expect(card).to_have_attribute("data-status", "finished", timeout=180_000)
    truth = database(
        served,
        "from dialogues.runs.models import Dialogue, Run, Turn\n"
        "from evaluation.report import run_dialogue_ids\n"
        f"d = Dialogue.objects.filter(run={run_id})\n"
        f"ids, which = run_dialogue_ids(Run.objects.get(pk={run_id}))\n"
        "print(json.dumps({'dialogues': d.count(), 'kept': d.filter(kept=True).count(), 'evaluated': len(ids),"
        f" 'which': which, 'turns': Turn.objects.filter(dialogue__run={run_id}).count()}}))",
    )
    # the dialogue list and the evaluation panel were drawn again when the run ended, without a reload
    results = page.locator("#dialogue-results")
    expect(results.locator(".count")).to_have_text(
        f"{truth['dialogues']} dialogue{'s' if truth['dialogues'] != 1 else ''}"
    )
    expect(results.locator("tbody tr")).to_have_count(truth["dialogues"])
    expect(results.locator("tbody tr", has_text="running")).to_have_count(0)
    expect(page.locator(".run-sif")).to_contain_text(f"Over the {truth['evaluated']} {truth['which']} dialogue")
    facts = card.locator(".progress-facts")
    for label, value in (("attempts", truth["dialogues"]), ("kept", truth["kept"]), ("turns", truth["turns"])):
        expect(facts.locator(f"div:has(dt:text-is('{label}')) dd")).to_have_text(str(value))
    expect(facts).to_contain_text(f"{DEMO_TASKS} / {DEMO_TASKS}")
    assert page.evaluate("() => window.e2eDocument") == mark, "the page was reloaded"


def test_a_report_opened_before_its_evaluation_ends_fills_in_by_itself(watched: Page):
    page = watched
    log_in(page, "admin", ADMIN_PASSWORD)
    run_id = launch(page, name="to be evaluated")
    expect(one_card(page, run_id)).to_have_attribute("data-status", "finished", timeout=180_000)
    page.goto(f"/runs/{run_id}/report/")
    expect(page.locator("table.episode-table")).to_have_count(0)  # nothing judged yet
    mouse_click(page, page.locator(".report-head").get_by_role("button", name="Evaluate"))
    # the report, opened while the job runs: its button says so, and the job card moves
    expect(page.locator(".evaluation-job")).to_have_attribute("data-status", re.compile("queued|running"))
    expect(page.locator(".report-head").get_by_role("button", name="Evaluating…")).to_be_disabled()
    mark = mark_document(page)
    expect(page.locator(".evaluation-job")).to_have_attribute("data-status", "done", timeout=180_000)
    # without a reload: the tables fill in and the button is "Evaluate" again
    expect(page.locator("table.episode-table")).to_be_visible()
    expect(page.locator("table.sif-table")).to_be_visible()
    expect(page.locator(".report-head").get_by_role("button", name="Evaluate", exact=True)).to_be_enabled()
    expect(page.locator("#fig-sdiv .main-svg").first).to_be_visible()
    assert page.evaluate("() => window.e2eDocument") == mark, "the page was reloaded"


def test_a_large_launch_is_confirmed_with_its_estimate_and_a_bad_sample_refused(watched: Page, console, served, shots):
    page = watched
    log_in(page, "admin", ADMIN_PASSWORD)
    runs_before = database(served, "from dialogues.runs.models import Run; print(Run.objects.count())")
    page.goto("/runs/new/")
    estimate = page.locator("#estimate")
    demo_tasks_only(page)
    expect(estimate).to_contain_text(f"{DEMO_TASKS} tasks, more than {CONFIRM_TASKS}")
    requests = re.search(r"~([\d,]+) LLM requests", estimate.inner_text()).group(1)

    # a sample of 0, then of more than the selection: the panel says why, and nothing starts
    sample = page.get_by_label("Random sample of")
    sample.fill("0")
    sample.dispatch_event("change")
    expect(estimate).to_contain_text("A sample needs at least 1 task")
    console.allow(r"status of 400")  # the launcher answers 400 with the reason
    mouse_click(page, page.get_by_role("button", name="Start the run"))
    expect(page.get_by_role("alert").first).to_contain_text("A sample needs at least 1 task")
    sample.fill("8")
    sample.dispatch_event("change")
    expect(estimate).to_contain_text(f"A sample of 8 is more than the {DEMO_TASKS} tasks selected")
    mouse_click(page, page.get_by_role("button", name="Start the run"))
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was started.")
    expect(page.get_by_role("alert").first).to_contain_text(f"A sample of 8 is more than the {DEMO_TASKS} tasks")
    assert database(served, "from dialogues.runs.models import Run; print(Run.objects.count())") == runs_before

    # every task: the confirmation repeats the estimate before anything starts
    page.get_by_label("Random sample of").fill("")
    page.get_by_label("Run name").fill("large, confirmed")
    page.get_by_label("Step through by hand (dialogues start paused)").check()
    expect(estimate).to_contain_text(f"{DEMO_TASKS} tasks selected")
    mouse_click(page, page.get_by_role("button", name="Start the run"))
    expect(page.get_by_role("heading", name="Start this run?")).to_be_visible()
    expect(page.locator(".confirm-requests")).to_have_text(f"~{requests}")
    expect(page.locator(".confirm-tokens")).to_contain_text(re.compile(r"~[\d,]+"))
    expect(page.get_by_role("main")).to_contain_text(f"{DEMO_TASKS} tasks, more than {CONFIRM_TASKS}")
    snap(page, shots, "launch-confirmation")
    assert database(served, "from dialogues.runs.models import Run; print(Run.objects.count())") == runs_before
    mouse_click(page, page.get_by_role("button", name="Back to the launcher"))
    expect(page.get_by_label("Run name")).to_have_value("large, confirmed")
    mouse_click(page, page.get_by_role("button", name="Start the run"))
    mouse_click(page, page.get_by_role("button", name=f"Start the run of {DEMO_TASKS} tasks"))
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator(".run-progress")).to_contain_text("large, confirmed")
    expect(page.locator(".run-progress .badge").first).to_have_text("paused")  # waiting for a hand, as it says
    assert database(served, "from dialogues.runs.models import Run; print(Run.objects.count())") == runs_before + 1
