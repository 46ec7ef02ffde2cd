"""The house's shape (docs/architecture.md): the engine is pure Python, the import contracts hold, modules stay
short enough to read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def test_the_engine_pulls_in_nothing_but_the_standard_library() -> None:
    """Importing every engine module in a fresh interpreter loads no Django and no third-party package."""
    engine = sorted(p.stem for p in (ROOT / "dialogues" / "engine").glob("*.py") if p.stem != "__init__")
    assert "stepper" in engine and "llm" in engine
    script = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {engine!r}: importlib.import_module('dialogues.engine.' + name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, env={"PYTHONPATH": ""}
    )
    loaded = set(json.loads(result.stdout))
    foreign = sorted(loaded - set(sys.stdlib_module_names) - {"dialogues"})
    assert "django" not in loaded
    assert foreign == [], f"the engine pulled in {foreign}"


def test_the_import_contracts_hold() -> None:
    """.importlinter is the architecture's written form; lint-imports checks every contract in it."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_module_is_longer_than_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for top in ("dialogues", "evaluation", "omega_web")
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
