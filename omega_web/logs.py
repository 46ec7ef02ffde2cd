"""Logging pieces named in settings.LOGGING."""

from __future__ import annotations

import logging


class ForbiddenOnOneLine(logging.Filter):
    """A 403 is a role meeting a page it may not use, not a fault: Django logs it with the PermissionDenied's
    traceback (about 30 lines each); keep the one line that says who was refused what."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
