"""Keys that name dialogues and runs across instances: an exported dialogue carries its key, and importing it
elsewhere keeps that key, so that a re-export says the same and importing a file twice adds nothing.

A dialogue made here is `<instance>/dialogue/<id>` and a run `<instance>/run/<id>`, where the instance key is
made once per database; an imported dialogue or run keeps the key it came with.
"""

from __future__ import annotations

import uuid
from functools import cache

from django.db import connection

from dialogues.runs.models import Dialogue, Instance, Run


@cache
def _instance_key(database: str) -> str:
    row = Instance.objects.first()
    if row is None:
        row, _ = Instance.objects.get_or_create(pk=1, defaults={"key": f"omega-{uuid.uuid4().hex[:12]}"})
    return row.key


def instance_key() -> str:
    return _instance_key(str(connection.settings_dict["NAME"]))


def dialogue_key(dialogue: Dialogue) -> str:
    return dialogue.external_key or f"{instance_key()}/dialogue/{dialogue.pk}"


def run_key(run: Run) -> str:
    return run.external_key or f"{instance_key()}/run/{run.pk}"


def local_dialogue_id(key: str) -> int | None:
    """The id of a dialogue made here that `key` names (None if the key is another instance's)."""
    prefix = f"{instance_key()}/dialogue/"
    if key.startswith(prefix) and key[len(prefix) :].isdigit():
        return int(key[len(prefix) :])
    return None
