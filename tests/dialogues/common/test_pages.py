"""Page extensions: providers add context to a named page, in the order registered; a page nobody extends gets
nothing; evaluation extends the corpus page (registered when Django starts)."""

from __future__ import annotations

import pytest

from dialogues.common import pages
from evaluation.pages import corpus_evaluations


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(pages, "_providers", {})
    return pages


def test_providers_add_context_to_their_page_only(registry):
    registry.register("a_page", lambda *, thing, **_: {"seen": thing, "order": "first"})
    registry.register("a_page", lambda **_: {"order": "second"})
    registry.register("other_page", lambda **_: {"other": True})
    assert registry.page_context("a_page", thing=3) == {"seen": 3, "order": "second"}
    assert registry.page_context("nobody_extends_this") == {}


def test_a_provider_registered_twice_runs_once(registry):
    calls = []

    def provider(**_):
        calls.append(1)
        return {}

    registry.register("a_page", provider)
    registry.register("a_page", provider)
    registry.page_context("a_page")
    assert calls == [1]


def test_evaluation_extends_the_corpus_page():
    assert corpus_evaluations in pages._providers["corpus_detail"]
