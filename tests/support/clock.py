"""A clock for deadlines that moves on by itself, so a test can run a job "past its deadline" in no time."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from dialogues.common import deadlines


def deadlines_clock_jumps(monkeypatch: pytest.MonkeyPatch, *, seconds: float) -> None:
    """From now on, every reading of the deadlines' clock is `seconds` later than the one before (only
    dialogues.common.deadlines sees this clock; everything else keeps real time)."""
    now = [time.monotonic()]

    def monotonic() -> float:
        now[0] += seconds
        return now[0]

    monkeypatch.setattr(deadlines, "time", SimpleNamespace(monotonic=monotonic))
