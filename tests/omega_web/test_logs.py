"""A 403 is one line in the server's log, not a traceback (issue 28)."""

from __future__ import annotations

import logging
import sys

import pytest
from django.conf import settings
from django.urls import reverse

from omega_web.roles import Role

pytestmark = pytest.mark.django_db


def test_a_403_writes_one_log_line(client_for, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        answer = client_for(Role.VIEWER).get(reverse("corpus_new"))
    assert answer.status_code == 403
    refused = [r for r in caplog.records if r.name == "django.request" and r.status_code == 403]
    assert len(refused) == 1
    formatter = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    line = formatter.format(refused[0])
    assert "\n" not in line and "Forbidden" in line and "/corpora/new/" in line


def test_a_500_keeps_its_traceback():
    # the filter only shortens refusals: a record of a failure goes through with its traceback
    from omega_web.logs import ForbiddenOnOneLine

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.status_code = 500
    assert ForbiddenOnOneLine().filter(record) and record.exc_info is not None
    assert "RuntimeError: boom" in logging.Formatter().format(record)
