"""The real-model suite: omega-web against llama.cpp's llama-server and llama-cpp-python's server, both serving
SmolLM2-135M-Instruct, on the real SOTOPIA tasks. Built by `make real-model`; skipped with the reason when it has not
been built, failed instead with OMEGA_REQUIRE_REAL_MODEL=1 (CI).

Like the browser tests, everything runs in the app's own processes (`manage.py …`, `manage.py serve`) with their
own var/ directory and SQLite database; the tests read what was stored through `facts.dump`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from ..support.processes import app_env, manage
from ..support.real_model import RealModel, find_real_model, real_model_unavailable

ADMIN_PASSWORD = "real-model-admin-password-1"

CHOOSE_TASKS = """
import json
from dialogues.library.models import Task
tasks = Task.objects.filter(source="sotopia").select_related("scenario").order_by("scenario__codename", "id")
hard = tasks.filter(hard=True).first()
other = tasks.filter(hard=False).first()
print(json.dumps({
    "hard": [hard.external_id, hard.scenario.codename],
    "other": [other.external_id, other.scenario.codename],
}))
"""


@dataclass
class App:
    """The app's environment (its var/ directory and database), and the two tasks the suite generates on."""

    env: dict[str, str]
    var_dir: Path
    hard_task: str
    other_task: str
    hard_codename: str

    def manage(self, extra_env: dict[str, str], *args: str, timeout: float = 1800):
        result = manage({**self.env, **extra_env}, *args, timeout=timeout)
        assert result.returncode == 0, (
            f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
        return result

    def facts(self, run_ids: list[int], dump: str = "dump") -> list[dict]:
        code = f"from tests.real_model.facts import {dump}; {dump}({list(run_ids)!r})"
        return json.loads(self.manage({}, "shell", "-c", code).stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def real_model() -> RealModel:
    return find_real_model()


@pytest.fixture(scope="session")
def app(real_model, tmp_path_factory) -> App:
    sotopia = Path(django_settings.OMEGA_SOTOPIA_DIR)
    if not (sotopia / "sotopia_agent_profiles.jsonl").exists():
        real_model_unavailable(f"the shared SOTOPIA data is not at {sotopia} (set OMEGA_SOTOPIA_DIR)")
    var_dir = tmp_path_factory.mktemp("real-model-var")
    env = app_env(var_dir, OMEGA_ADMIN_PASSWORD=ADMIN_PASSWORD, OMEGA_SOTOPIA_DIR=str(sotopia))
    for command in (
        ["migrate", "--no-input", "-v", "0"],
        ["ensure_admin"],
        ["import_sotopia", str(sotopia), "-v", "0"],
    ):
        result = manage(env, *command)
        assert result.returncode == 0, f"manage.py {' '.join(command)}:\n{result.stdout}{result.stderr}"
    chosen = manage(env, "shell", "-c", CHOOSE_TASKS)
    assert chosen.returncode == 0, chosen.stderr
    tasks = json.loads(chosen.stdout.splitlines()[-1])  # the shell may print before it
    return App(env, var_dir, tasks["hard"][0], tasks["other"][0], tasks["hard"][1])


def run_id(output: str) -> int:
    found = re.search(r"Run #(\d+) ", output)
    assert found, f"no run in the output:\n{output}"
    return int(found.group(1))
