"""Every kind of answer no step can use, with the words its failure names: the engine retries each, a run's step
fails with it (tests/dialogues/engine/test_failures.py, tests/dialogues/runs/test_generate.py)."""

from __future__ import annotations

import pytest

from .llm_server import Reply

UNUSABLE = [
    pytest.param(Reply(texts=["Sure, I will speak now."]), "no JSON object", id="garbage-text"),
    pytest.param(Reply(texts=['{"speech": "hello"}']), "action without", id="wrong-keys"),
    pytest.param(Reply(texts=['{"action_type": "shout", "argument": "hi"}']), "unknown action_type", id="bad-type"),
    pytest.param(Reply(no_choices=True), "no choices", id="empty-choices"),
    pytest.param(
        Reply(body='{"id": "x", "choices": [{"index": 0, "message": {"content": "{\\"act'),
        "not JSON",
        id="truncated-body",
    ),
    pytest.param(Reply(body="<html>Bad gateway</html>"), "not JSON", id="html-body"),
    pytest.param(Reply(texts=[""]), "empty answer", id="empty-content"),
]
