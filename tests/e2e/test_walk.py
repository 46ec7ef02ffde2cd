"""A walk over every page at 1366×768 (issue 28): nothing is wider than its container (the leaderboard included),
the task table's first row is above the fold, every figure's PNG, SVG and CSV downloads work, and every page is
saved as a screenshot at 1366 and 1920 pixels wide (tests/e2e/artifacts/9x-*). Each test fails on any console
error (the `page` fixture).

Its data is made with the command line (a generation run, and a simulated benchmark evaluated to the end), so the
walk finds runs, dialogues with their S-IF figures, a report and a leaderboard row whatever ran before it."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from ..support.processes import manage
from .conftest import ADMIN_PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)

IDS = """
import json
from dialogues.runs.models import Run
gen = Run.objects.filter(name="walk run").latest("id")
bench = Run.objects.filter(name="walk bench").latest("id")
kept = list(gen.dialogues.filter(kept=True).order_by("id").values_list("id", flat=True))
print(json.dumps({"run": gen.pk, "bench": bench.pk, "dialogues": kept,
                  "bench_dialogue": bench.dialogues.order_by("id").first().pk, "task": gen.dialogues.first().task_id}))
"""

# Every element whose content is wider than its box, among what is shown: form controls clip their text by design,
# and a 1-pixel box is a visually hidden label for screen readers.
OVERFLOWING = """() => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg, select, option, input, textarea, .js-plotly-plot') || !el.checkVisibility()) continue;
    if (el.clientWidth <= 1 || getComputedStyle(el).display === 'inline') continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      out.push(`${el.tagName.toLowerCase()}.${String(el.className).trim().replace(/\\s+/g, '.')}`
               + `#${el.id} ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  return out;
}"""


@pytest.fixture(scope="module")
def data(served) -> dict:
    for command in (
        ["generate", "--tasks", "field_trip_seats", "library_roof_fund", "--simulated", "--name", "walk run"],
        ["benchmark", "--setting", "self-play", "--tasks", "hard", "--split", "any", "--simulated", "--evaluate",
         "--name", "walk bench"],
    ):  # fmt: skip
        result = manage(served.env, *command, timeout=600)
        assert result.returncode == 0, f"manage.py {' '.join(command)}:\n{result.stdout}{result.stderr}"
    result = manage(served.env, "shell", "-c", IDS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def pages(d: dict) -> list[tuple[str, str]]:
    a, b = d["dialogues"][:2]
    return [
        ("90-tasks", "/tasks/"),
        ("90-task", f"/tasks/{d['task']}/"),
        ("90-imports", "/imports/"),
        ("90-import-tasks", "/imports/new/"),
        ("90-import-corpus", "/imports/corpus/new/"),
        ("91-runs", "/runs/"),
        ("91-run-new", "/runs/new/"),
        ("91-run", f"/runs/{d['run']}/"),
        ("91-benchmark-new", "/runs/benchmark/new/"),
        ("91-bench-run", f"/runs/{d['bench']}/"),
        ("91-report", f"/runs/{d['bench']}/report/"),
        ("92-dialogues", "/dialogues/"),
        ("92-dialogue-reading", f"/dialogues/{a}/"),
        ("92-dialogue-annotating", f"/dialogues/{a}/?annotate=1"),
        ("92-bench-dialogue", f"/dialogues/{d['bench_dialogue']}/"),
        ("92-compare", f"/dialogues/compare/?a={a}&b={b}"),
        ("92-fork", f"/dialogues/{a}/fork/?turn=5"),
        ("93-annotate", "/annotate/"),
        ("93-labels", "/labels/"),
        ("93-prompts", "/prompts/"),
        ("93-prompt-set", "/prompts/sets/built-in/"),
        ("93-prompt-copy", "/prompts/sets/built-in/copy/"),
        ("93-prompt-diff", "/prompts/diff/"),
        ("93-corpora", "/corpora/"),
        ("93-corpus-new", "/corpora/new/"),
        ("94-evaluations", "/evaluations/"),
        ("94-runs-compared", f"/evaluations/compare/?run={d['run']}&run={d['bench']}"),
        ("94-leaderboard", "/evaluations/leaderboard/"),
        ("95-admin-users", "/admin/auth/user/"),
    ]


def test_every_page_fits_1366_pixels_and_is_photographed(page: Page, snap, data):
    log_in(page, "admin", ADMIN_PASSWORD)
    problems = {}
    for name, url in pages(data):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        if page.locator("[data-figure]").count():
            expect(page.locator(".main-svg").first).to_be_attached()  # Plotly has drawn
        found = page.evaluate(OVERFLOWING)
        if found:
            problems[url] = found
        if name == "90-tasks":
            first_row = page.locator("#task-results tbody tr").first.bounding_box()
            assert first_row["y"] + first_row["height"] <= 768, f"the first task row ends at {first_row}"
        if name == "94-leaderboard":
            expect(page.locator("table.leaderboard tbody tr", has_text="simulated")).not_to_have_count(0)
            scroller = page.locator(".table-scroll").first.evaluate("(el) => [el.scrollWidth, el.clientWidth]")
            assert scroller[0] <= scroller[1], f"the leaderboard scrolls sideways: {scroller}"
        snap(name)
    assert problems == {}, "wider than their box at 1366 px:\n" + json.dumps(problems, indent=1)


def downloads_of(page: Page, figure_id: str, base_url: str) -> None:
    """The PNG and SVG buttons beside a figure save images Plotly draws from it; its CSV link answers text/csv."""
    tools = page.locator(f".downloads:has([data-target='{figure_id}'])")
    for kind, starts in (("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<svg")):
        with page.expect_download() as started:
            tools.locator(f"[data-download='{kind}']").click()
        saved = started.value
        assert saved.suggested_filename.endswith(f".{kind}"), saved.suggested_filename
        with open(saved.path(), "rb") as stream:
            head = stream.read(64)
        assert head.startswith(starts), (figure_id, kind, head)
    csv_link = tools.locator("a[download]")
    href = csv_link.get_attribute("href")
    answer = page.request.get(base_url + href)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv"), (href, answer.status)
    lines = answer.text().splitlines()
    assert lines[0] == "trace,x,y,value" or "," in lines[0], (href, lines[:2])
    assert len(lines) > 1, f"{href} has no rows"


def test_every_figure_downloads_as_png_svg_and_csv(page: Page, data, served):
    log_in(page, "admin", ADMIN_PASSWORD)
    a, b = data["dialogues"][:2]
    # the dialogue page's rating chart, and a benchmark dialogue's S-IF figures (heatmap and strip) with their scale
    page.goto(f"/dialogues/{a}/?annotate=1")
    downloads_of(page, f"rating-plot-{a}", served.url)
    bench = data["bench_dialogue"]
    page.goto(f"/dialogues/{bench}/?annotate=1")
    expect(page.locator(".sif .plot.heatmap").first).to_be_visible()
    expect(page.locator(".colour-scale .bar.blues").first).to_be_visible()
    expect(page.locator(".colour-scale .bar.relevance").first).to_be_visible()
    for number in (1, 2):
        downloads_of(page, f"sif-plot-{bench}-agent-{number}", served.url)
    # the comparison of two dialogues
    page.goto(f"/dialogues/compare/?a={a}&b={b}")
    downloads_of(page, "compare-plot", served.url)
    # the report's figures, which had their downloads already
    page.goto(f"/runs/{data['bench']}/report/")
    figures = page.locator(".report-figure .plot[id]")
    expect(figures.first).to_be_visible()
    for figure_id in figures.evaluate_all("(els) => els.map((el) => el.id)"):
        downloads_of(page, figure_id, served.url)


def test_a_corpus_form_with_nothing_selected_names_the_filters_that_removed_the_dialogues(page: Page, data, snap):
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/corpora/new/")
    counts = page.locator("#counts")
    page.get_by_label("Tasks").fill("no-such-task")
    expect(counts).to_contain_text("Nothing selected.")
    expect(counts.locator(".funnel-empty [role=status]")).to_contain_text("tasks no-such-task removed")
    expect(counts.locator("details")).to_have_attribute("open", "")
    # the run's own dialogues, simulated: the default that excludes simulated dialogues is named with its count
    page.get_by_label("Tasks").fill("")
    page.get_by_role("checkbox", name="#" + str(data["run"]) + " walk run · dsi · simulated").check()
    expect(counts.locator(".funnel-empty [role=status]")).to_contain_text("simulated dialogues excluded removed")
    snap("96-corpus-nothing-selected")
    page.get_by_label("Exclude simulated dialogues").uncheck()
    expect(counts).not_to_contain_text("Nothing selected.")
    expect(counts).to_contain_text("simulated")
    # an inverted goal_c range is refused with its reason, not shown as an empty corpus
    page.get_by_label("final goal_c ≥").fill("9")
    page.get_by_label("final goal_c ≤").fill("5")
    page.get_by_label("final goal_c ≤").blur()
    expect(counts).to_contain_text("5 is below the lower bound 9: no dialogue can match")
