"""omega-web against a real language model on two real servers nobody here wrote.

On two real SOTOPIA tasks (one hard), DSI, NSI and h-NSI dialogues are generated from the CLI with the paper's five
judge samples and structured output on, then evaluated (S_div, S_rel, SOTOPIA-EVAL) with the same server as judge
and exported as a corpus that `datasets` loads. A 135M model writes poor dialogue: these tests check the machinery a
researcher relies on, not the quality. The negotiation workflow is reached by starting the ratings after the first
turn (`--native-turns 1`), since the model tends to leave early.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from ..support.real_model import MODEL_NAME, real_server
from .checks import JUDGE_SAMPLES, MAX_TOKENS, MAX_TURNS, check_evaluation, check_run
from .conftest import App, run_id

pytestmark = [pytest.mark.real_model, pytest.mark.slow, pytest.mark.timeout(3600)]

VARIANTS = ("dsi", "nsi", "hnsi")


def generate(app: App, env: dict[str, str], server: str, variant: str) -> int:
    result = app.manage(
        env,
        "generate",
        "--tasks", app.hard_task, app.other_task,
        "--variant", variant,
        "--attempts", "1",
        "--max-tokens", str(MAX_TOKENS),
        "--judge-samples", str(JUDGE_SAMPLES),
        "--native-turns", "1",
        "--max-turns", str(MAX_TURNS),
        "--name", f"{server} {variant}",
    )  # fmt: skip
    assert "Server " in result.stdout or "server" in result.stdout.lower(), result.stdout  # the profile is printed
    return run_id(result.stdout)


def evaluate(app: App, env: dict[str, str], dialogue_ids: list[int]) -> str:
    args = ["evaluate", "--metrics", "sdiv,srel,sotopia"]
    args += ["--max-tokens", str(MAX_TOKENS), "--episode-max-tokens", str(MAX_TOKENS)]  # both judges
    for pk in dialogue_ids:
        args += ["--dialogue", str(pk)]
    return app.manage(env, *args).stdout


def export(app: App, run_ids: list[int], name: str, out: Path) -> Path:
    create = (
        "from dialogues.corpora.models import Corpus; from dialogues.corpora.selection import CorpusFilters; "
        f"Corpus.objects.create(name={name!r}, filters=CorpusFilters(runs={run_ids!r}, split='', "
        "passed_only=False, kept_only=True, exclude_labels=[]).to_json())"
    )
    app.manage({}, "shell", "-c", create)
    result = app.manage(
        {}, "export_corpus", name, "--override", "eval_split=the real-model suite exports every task", "--out", str(out)
    )
    copied = re.search(r"Copied to (.+\.zip)", result.stdout)
    assert copied, result.stdout
    return Path(copied.group(1).strip())


@pytest.mark.parametrize("server", ["llama-server", "llama-cpp-python"])
def test_generate_evaluate_and_export_from_the_cli(app, real_model, server, tmp_path):
    with real_server(server, real_model, tmp_path) as running:
        env = {"OMEGA_LLM_BASE_URLS": running.url, "OMEGA_LLM_MODEL": MODEL_NAME, **running.env}
        runs = [generate(app, env, server, variant) for variant in VARIANTS]
        facts = app.facts(runs)
        totals = {"dialogues": 0, "ratings": 0, "turns": 0, "utilities": 0, "negotiation_calls": 0}
        for run in facts:
            for key, value in check_run(run, server).items():
                totals[key] += value
        # the machinery was exercised, not skipped: turns, ratings and the negotiation workflow's calls (whose
        # utilities this model may get wrong every time: then they are refused with the reason, never stored)
        assert totals["dialogues"] == 2 * len(VARIANTS), totals
        assert totals["turns"] > 0 and totals["ratings"] > 0, totals
        assert totals["negotiation_calls"] > 0, f"{server}: the negotiation workflow never ran: {totals}"
        finished = [d["id"] for run in facts for d in run["dialogues"] if d["status"] == "finished"]
        assert finished, f"{server}: no dialogue finished"
        # two of them (the judges' answers, like the expert's, often run to max_tokens with this model: each
        # dialogue costs minutes)
        summary = evaluate(app, env, finished[:2])
        assert "done in" in summary, summary
        check_evaluation(app.facts(finished[:2], dump="dump_evaluation"), finished[:2])
        zip_path = export(app, runs, f"real-{server}", tmp_path / "export")
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "corpus")
    data_dir = tmp_path / "corpus" / zip_path.stem
    info = json.loads((data_dir / "dataset_info.json").read_text())
    entry = info["sotopia_omega"]
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=str(data_dir / entry["file_name"]), split="train")
    assert len(dataset) > 0 and set(dataset.column_names) == {"instruction", "input", "output"}
    for record in dataset:  # each output is an action the model gave, as JSON
        assert json.loads(record["output"])["action_type"]
