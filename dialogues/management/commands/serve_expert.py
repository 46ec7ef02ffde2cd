"""python manage.py serve_expert — start vLLM's OpenAI-compatible server for the expert model.

Where vLLM is installed (a CUDA machine with `pip install -e '.[gpu]'`) this replaces itself with `vllm serve`
and sensible flags; elsewhere it says what to install and prints the command to run there.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PAPER_MODEL = "Qwen/Qwen2.5-72B-Instruct"  # the paper's expert (Appendix C.2)


def gpu_count() -> int:
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


class Command(BaseCommand):
    help = "Serve the expert model with vLLM's OpenAI-compatible server (prefix caching on, the run's served name)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", default=PAPER_MODEL, help=f"Hugging Face id or local path (default {PAPER_MODEL})"
        )
        parser.add_argument(
            "--served-name",
            default=None,
            help="the name omega-web asks for (default: OMEGA_LLM_MODEL, else the model's basename)",
        )
        parser.add_argument("--tensor-parallel-size", type=int, default=None, help="default: every visible GPU")
        parser.add_argument("--host", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument(
            "--max-model-len",
            type=int,
            default=32768,
            help="context length; a 20-turn dialogue with its rating prompt stays well below",
        )
        parser.add_argument("--gpu-memory-utilization", type=float, default=0.92)
        parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
        parser.add_argument("extra", nargs="*", help="more vLLM arguments, after --")

    def handle(self, *args, **o):
        served = o["served_name"] or settings.OMEGA_LLM_MODEL or o["model"].rstrip("/").split("/")[-1]
        tensor_parallel = o["tensor_parallel_size"] or max(1, gpu_count())
        flags = [
            o["model"],
            "--served-model-name",
            served,
            "--tensor-parallel-size",
            str(tensor_parallel),
            "--host",
            o["host"],
            "--port",
            str(o["port"]),
            "--max-model-len",
            str(o["max_model_len"]),
            "--gpu-memory-utilization",
            str(o["gpu_memory_utilization"]),
            # prompts put the stable part (agent, task) first, so requests of a dialogue share cached prefixes
            "--enable-prefix-caching",
            # usage.prompt_tokens_details.cached_tokens in every answer: the run page's measured prefill (ADR 0028)
            "--enable-prompt-tokens-details",
            # vLLM's own sampling defaults, not the model's generation_config (omega-web sends every parameter)
            "--generation-config",
            "vllm",
            *o["extra"],
        ]
        command = ["vllm", "serve", *flags]
        shown = shlex.join(command)
        client = f"OMEGA_LLM_BASE_URLS=http://<this-host>:{o['port']}/v1 OMEGA_LLM_MODEL={served}" + (
            " OMEGA_LLM_API_KEY=<the same key>" if settings.OMEGA_LLM_API_KEY else ""
        )
        if o["dry_run"]:
            self.stdout.write(shown)
            self.stdout.write(f"omega-web then uses: {client}")
            return
        if importlib.util.find_spec("vllm") is None:
            raise CommandError(
                "vLLM is not installed in this environment (it needs NVIDIA GPUs with CUDA; the paper's 72B expert "
                "needs about 160 GB of GPU memory in bf16, e.g. 4 x A100-80G).\n"
                "On the GPU machine, in this project: pip install -e '.[gpu]'\n"
                f"then run: python manage.py serve_expert --model {o['model']}   (it runs: {shown})\n"
                f"and point omega-web at it: {client}"
            )
        env = dict(os.environ)
        if settings.OMEGA_LLM_API_KEY:
            env["VLLM_API_KEY"] = settings.OMEGA_LLM_API_KEY  # never on the command line, where `ps` shows it
        executable = shutil.which("vllm")
        argv = (
            [executable, "serve", *flags]
            if executable
            else [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", *flags]
        )
        self.stdout.write(f"Starting: {shown}\nomega-web then uses: {client}")
        self.stdout.flush()
        os.execve(argv[0], argv, env)
