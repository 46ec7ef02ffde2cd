"""Deadlines for long jobs (corpus exports, evaluation jobs, imports). Workers run the threads pool, where Celery
enforces no time limit, so a job enforces its own: it runs inside `deadline(seconds)` and calls `deadline_check()`
wherever it reports progress; past the deadline that raises `DeadlinePassed`, and the job is marked failed with
its message ("stopped: past its deadline of N s"). Cooperative: a job stops at its next progress point, not
mid-statement. A dialogue step needs none: its lease bounds it (runs/leases.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class DeadlinePassed(Exception):
    """A job ran past its deadline; the message is the reason its record shows."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"stopped: past its deadline of {seconds:g} s")


@dataclass(frozen=True)
class Deadline:
    seconds: float
    ends: float  # on time.monotonic()'s clock

    def check(self) -> None:
        if time.monotonic() >= self.ends:
            raise DeadlinePassed(self.seconds)


# Each worker thread runs one job at a time, in its own context, so jobs in other threads never see this one.
_current: ContextVar[Deadline | None] = ContextVar("omega_job_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Run the block under a deadline `seconds` from now (a nested deadline never extends an outer one)."""
    if seconds <= 0:
        raise ValueError(f"a deadline is a positive number of seconds, not {seconds}")
    outer = _current.get()
    ends = time.monotonic() + seconds
    current = outer if outer is not None and outer.ends < ends else Deadline(seconds=seconds, ends=ends)
    token = _current.set(current)
    try:
        yield current
    finally:
        _current.reset(token)


def deadline_check() -> None:
    """Raise DeadlinePassed if the job running in this context is past its deadline (no deadline: nothing)."""
    current = _current.get()
    if current is not None:
        current.check()


def failure_reason(exc: BaseException) -> str:
    """What a failed job's record says: a deadline's own sentence, otherwise the error's type and message."""
    if isinstance(exc, DeadlinePassed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
