"""sotopia's own environment for the tests of sotopia's evaluator (ADR 0025).

Without it a test is skipped with the reason (`make sotopia` builds it); with OMEGA_REQUIRE_SOTOPIA=1 (`make
test-sotopia`, CI's own stage) it fails instead, so the evaluator's test cannot be skipped there unnoticed.
"""

from __future__ import annotations

import os

import pytest

from evaluation import sotopia_evaluator


def sotopia_required() -> bool:
    return os.environ.get("OMEGA_REQUIRE_SOTOPIA", "") not in {"", "0", "false", "no"}


def require_sotopia() -> None:
    """Skip, or fail when sotopia's environment is required, unless sotopia's evaluator can run here."""
    reason = sotopia_evaluator.unavailable_reason()
    if not reason:
        return
    if sotopia_required():
        pytest.fail(f"{reason} (OMEGA_REQUIRE_SOTOPIA=1, so this fails instead of skipping)")
    pytest.skip(reason)
