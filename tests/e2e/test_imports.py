"""Importing a corpus made elsewhere in the browser: a file with bad records is refused with every problem named
(file, line, field) and nothing imported; with "skip bad records" the good records come in and every skipped line
is listed; a larger SFT file shows its progress while it is read; the imported dialogue reads with its text escaped
and its made-elsewhere fields. Screenshots 60-64."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from bench.imports import write_sft

from .conftest import ADMIN_PASSWORD, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=60_000)
RL = Path(settings.OMEGA_SOTOPIA_DIR) / "sotopia_rl_sft_example_prompt_output.json"


def upload(page: Page, path: Path, *, skip_bad: bool = False) -> None:
    page.goto("/imports/")
    page.get_by_role("link", name="Import a corpus").click()
    page.get_by_label("Corpus file").set_input_files(str(path))
    if skip_bad:
        page.get_by_label("Skip bad records").check()
    page.get_by_role("button", name="Check and import").click()
    expect(page).to_have_url(re.compile(r"/imports/\d+/$"))


def test_import_a_corpus_with_bad_records_then_skip_them(page: Page, snap, tmp_path):
    records = json.loads(RL.read_text())
    hostile = dict(records[2], value='<img src=x onerror="alert(1)">')
    wrong_type = json.dumps({"prompt": 3, "result": "{}"})
    lines = [json.dumps(records[0]), '{"input": "broken', json.dumps(records[1]), wrong_type, json.dumps(hostile),
             json.dumps(records[3])]  # fmt: skip
    path = tmp_path / "sotopia_pi_sft.jsonl"
    path.write_text("\n".join(lines) + "\n")
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/imports/corpus/new/")
    snap("59-corpus-import-form")

    upload(page, path)
    status = page.locator("section.job")
    expect(status).to_have_attribute("data-status", "failed")
    expect(status).to_contain_text("Nothing was imported. 2 of 6 records are bad; import again with Skip bad records")
    rows = status.locator("table.problems tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("sotopia_pi_sft.jsonl")
    expect(rows.nth(0).locator("td.num")).to_have_text("2")
    expect(rows.nth(1).locator("td.field")).to_have_text("prompt")
    snap("60-corpus-import-refused")

    upload(page, path, skip_bad=True)
    expect(status).to_have_attribute("data-status", "succeeded")
    expect(status).to_contain_text("Imported 1 dialogue (7 turns) from 6 records")
    expect(status.locator("table.skipped tbody tr")).to_have_count(2)
    snap("61-corpus-imported-skipping")

    status.get_by_role("link", name=re.compile("Open Imported")).click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    snap("62-imported-run")
    page.locator("a[href^='/dialogues/']").filter(has_text=re.compile(r"#?\d+")).first.click()
    expect(page).to_have_url(re.compile(r"/dialogues/\d+/"))
    expect(page.locator(".badge.imported")).to_be_visible()
    turn = page.locator("ol.timeline > li.turn").nth(4)
    turn.locator("details.imported summary").click()
    expect(turn.locator("details.imported")).to_contain_text('<img src=x onerror="alert(1)">')  # shown as text
    expect(page.locator(".fork-link")).to_have_count(0)
    snap("63-imported-dialogue")


def test_a_larger_sft_file_shows_its_progress(page: Page, snap, tmp_path):
    path = tmp_path / "sotopia_omega_synthetic.jsonl"
    write_sft(path, 40)
    log_in(page, "admin", ADMIN_PASSWORD)
    upload(page, path)
    status = page.locator("section.job")
    if status.get_attribute("data-status") == "running":
        expect(page.locator(".import-progress progress")).to_be_visible()
        snap("64-corpus-import-progress")
    expect(status).to_have_attribute("data-status", "succeeded", timeout=240_000)
    expect(status).to_contain_text("tasks rebuilt")
