"""Deadlines of long jobs: checked where a job reports progress, reported in one sentence, never extended by a
nested deadline, and a job's deadline is not seen by another thread's job."""

from __future__ import annotations

import threading

import pytest

from dialogues.common.deadlines import DeadlinePassed, deadline, deadline_check, failure_reason
from tests.support.clock import deadlines_clock_jumps


def test_a_check_past_the_deadline_stops_the_job_with_the_reason(monkeypatch):
    deadlines_clock_jumps(monkeypatch, seconds=4)
    with deadline(10):  # set at t, checked at t+4 (fine), t+8 (fine), t+12 (past)
        deadline_check()
        deadline_check()
        with pytest.raises(DeadlinePassed) as passed:
            deadline_check()
    assert str(passed.value) == "stopped: past its deadline of 10 s"
    assert failure_reason(passed.value) == "stopped: past its deadline of 10 s"
    assert failure_reason(ValueError("bad")) == "ValueError: bad"


def test_no_deadline_outside_a_job_and_a_nested_one_never_extends_the_outer(monkeypatch):
    deadline_check()  # nothing to check
    deadlines_clock_jumps(monkeypatch, seconds=4)
    with deadline(6), deadline(100), pytest.raises(DeadlinePassed, match="deadline of 6 s"):
        deadline_check()


def test_another_threads_job_does_not_see_this_deadline(monkeypatch):
    deadlines_clock_jumps(monkeypatch, seconds=4)
    seen: list[str] = []

    def other_job() -> None:
        deadline_check()  # no deadline in this thread's context
        seen.append("ran")

    with deadline(1):
        thread = threading.Thread(target=other_job)
        thread.start()
        thread.join()
    assert seen == ["ran"]


@pytest.mark.parametrize("seconds", [0, -5], ids=["zero", "negative"])
def test_a_deadline_is_positive(seconds):
    with pytest.raises(ValueError, match="positive number of seconds"), deadline(seconds):
        pass
