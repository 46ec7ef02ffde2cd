"""Writes. Keyword-only functions named <entity>_<action>; each is one short transaction."""

from .library import import_job_create, import_job_requeue_interrupted, import_job_run, task_library_import
from .runs import (
    dialogue_fail,
    dialogue_step_save,
    run_create,
)

__all__ = [
    "dialogue_fail",
    "dialogue_step_save",
    "import_job_create",
    "import_job_requeue_interrupted",
    "import_job_run",
    "run_create",
    "task_library_import",
]
