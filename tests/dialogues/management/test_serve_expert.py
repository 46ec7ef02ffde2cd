"""serve_expert: the vLLM command it would run, and a clear message where vLLM is not installed."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command


def test_dry_run_prints_the_vllm_command(settings):
    settings.OMEGA_LLM_MODEL = "Qwen2.5-72B-Instruct"
    settings.OMEGA_LLM_API_KEY = "sk-secret-never-shown"
    out = io.StringIO()
    call_command("serve_expert", "--dry-run", "--tensor-parallel-size", "4", stdout=out)
    text = out.getvalue()
    assert text.startswith(
        "vllm serve Qwen/Qwen2.5-72B-Instruct --served-model-name Qwen2.5-72B-Instruct --tensor-parallel-size 4"
    )
    assert "--enable-prefix-caching" in text and "--generation-config vllm" in text
    assert "--enable-prompt-tokens-details" in text  # the run page's measured prefill
    assert "OMEGA_LLM_BASE_URLS=http://<this-host>:8001/v1 OMEGA_LLM_MODEL=Qwen2.5-72B-Instruct" in text
    assert "sk-secret-never-shown" not in text


def test_without_vllm_it_says_what_to_install(settings):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed here")
    settings.OMEGA_LLM_API_KEY = ""
    with pytest.raises(CommandError) as refused:
        call_command("serve_expert", "--model", "Qwen/Qwen2.5-7B-Instruct")
    message = str(refused.value)
    assert "vLLM is not installed" in message and "pip install -e '.[gpu]'" in message
    assert "vllm serve Qwen/Qwen2.5-7B-Instruct --served-model-name" in message
