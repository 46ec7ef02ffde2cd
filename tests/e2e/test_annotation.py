"""Annotating and curating in the browser: the queue sends you to a dialogue, labels and quality go on turns with
the keyboard and are saved as you go, a correction needs its reason, the decision is taken with a key and
submitted, a curator reads the run's agreement, builds a corpus of the accepted dialogue, exports it and downloads
it, and the downloaded `sotopia-sft` file loads with the `datasets` library the way LLaMA-Factory reads it.
Screenshots 50-56."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_PASSWORD, finished_dialogue, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

expect.set_options(timeout=30_000)


def test_annotate_curate_and_download_a_corpus(page: Page, snap, served, console, artifacts):
    console.allow("status of 400")  # a correction without its reason is refused on purpose
    log_in(page, "admin", ADMIN_PASSWORD)
    finished_dialogue(page)
    run_id = re.search(r"/runs/(\d+)/", page.locator("nav.crumbs a").nth(1).get_attribute("href")).group(1)

    page.get_by_role("link", name="Annotate", exact=True).click()
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible()
    snap("50-annotation-queue")
    page.goto(f"/annotate/next/?run={run_id}")
    expect(page).to_have_url(re.compile(r"/dialogues/\d+/\?annotate=1"))
    slots = page.locator("ol.timeline .annot-slot form")
    expect(slots.first).to_be_visible()
    expect(page.locator(".annot-decision")).to_contain_text("Your annotation")

    # j to the first turn, 1 toggles the first label, Shift+3 sets the quality: each is saved at once
    page.locator("h1").click()
    page.keyboard.press("j")
    first = page.locator("ol.timeline > li.turn").first
    page.keyboard.press("1")
    expect(first.locator(".annot-status")).to_contain_text("Saved")
    expect(first.locator("label.chip").first.locator("input")).to_be_checked()
    page.keyboard.press("Shift+Digit3")
    expect(first.locator('input[data-quality="3"]')).to_be_checked()
    expect(first.locator(".annot-status")).to_contain_text("Saved")

    # the second turn: a correction without a reason is refused in place and keeps the text
    page.keyboard.press("j")
    second = page.locator("ol.timeline > li.turn").nth(1)
    page.keyboard.press("c")
    text = second.locator("textarea")
    expect(text).to_be_focused()
    text.fill("Could we share: six seats each, and swap on the way back?")
    second.locator('input[name="note"]').click()  # leaving the text field saves
    expect(second.locator(".annot-slot .error")).to_contain_text("say why the text is corrected")
    expect(second.locator("textarea")).to_have_value("Could we share: six seats each, and swap on the way back?")
    second.locator('input[name="correction_reason"]').fill("a concrete offer")
    second.locator('input[name="note"]').click()
    expect(second.locator(".annot-status")).to_contain_text("Saved")
    expect(second.locator(".badge.corrected")).to_be_visible()
    snap("51-turns-annotated")

    # a accepts (saved), then Submit
    page.locator("h1").click()
    page.keyboard.press("a")
    expect(page.locator(".annot-decision")).to_contain_text("Saved.")
    expect(page.locator('.decision-form input[value="accept"]')).to_be_checked()
    page.locator(".decision-form").get_by_role("button", name="Submit").click()
    expect(page.locator(".annot-decision")).to_contain_text("Submitted")
    snap("52-decision-submitted")

    # the curator's view of the run: agreement (one annotator: undefined, said so) and the adjudication form
    page.goto(f"/runs/{run_id}/agreement/")
    expect(page.get_by_role("heading", name=re.compile("Agreement"))).to_be_visible()
    expect(page.locator("body")).to_contain_text("undefined")
    snap("53-agreement")

    # A corpus of the accepted dialogue of this run: counts follow the form, the override is recorded, a version
    # is exported and downloaded.
    page.get_by_role("link", name="Corpora", exact=True).click()
    page.get_by_role("link", name="New corpus").click()
    page.get_by_label("Name", exact=True).fill(f"Accepted of run {run_id}")
    page.get_by_role("checkbox", name=re.compile(rf"^#{run_id} ")).check()
    page.get_by_label("Accepted only").check()
    page.get_by_label("Exclude simulated dialogues").uncheck()
    counts = page.locator("#counts")
    expect(counts).to_contain_text("1 dialogue ")
    expect(counts).to_contain_text("1 simulated")
    snap("54-corpus-builder")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=f"Accepted of run {run_id}")).to_be_visible()
    expect(page.get_by_role("button", name="Export version 1")).to_be_disabled()
    page.get_by_label("Why include them?").fill("checking the export pipeline end to end")
    page.get_by_role("button", name="Record the override").click()
    expect(page.locator(".overrides")).to_contain_text("checking the export pipeline end to end")
    page.get_by_role("button", name="Export version 1").click()
    expect(page.locator(".messages")).to_contain_text("Version 1 frozen: 1 dialogue; writing its files.")
    expect(page.get_by_role("link", name="Download")).to_be_visible()  # the worker wrote it; the table followed
    snap("55-corpus-exported")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download").first.click()
    download = download_info.value
    target = artifacts / download.suggested_filename
    download.save_as(target)
    with zipfile.ZipFile(target) as archive:
        folder = target.stem
        names = set(archive.namelist())
        assert f"{folder}/dataset_info.json" in names and f"{folder}/sotopia_omega.jsonl" in names
        archive.extractall(target.parent / "corpus")
    data_dir = target.parent / "corpus" / folder
    info = json.loads((data_dir / "dataset_info.json").read_text())
    entry = info["sotopia_omega"]  # LLaMA-Factory: alpaca columns, the file beside dataset_info.json
    assert entry["formatting"] == "alpaca" and (data_dir / entry["file_name"]).exists()
    assert entry["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=str(data_dir / entry["file_name"]), split="train")
    assert set(dataset.column_names) == {"instruction", "input", "output"} and len(dataset) >= 8
    assert "You are at Turn #0" in dataset[0]["instruction"]
    assert json.loads(dataset[1]["output"])["argument"] == "Could we share: six seats each, and swap on the way back?"
    page.goto("/corpora/")
    snap("56-corpora")
