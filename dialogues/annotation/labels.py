"""The default label set for turns (annotation). Imported by a data migration, so it holds no model imports."""

from __future__ import annotations

from typing import Any

DEFAULT_LABELS = [
    ("parroting", "Repeats itself or the other agent instead of moving on"),
    ("topic drift", "Leaves the scenario or the goal"),
    ("deadlock", "Neither side moves; the same positions again"),
    ("off-character", "Not what this character would say or do"),
    ("secret leaked", "Reveals a secret the character keeps"),
    ("unsafe", "Harmful, abusive or otherwise unsafe content"),
    ("strong strategy", "A good social move worth learning from"),
    ("style-transfer artifact", "Traces of the negotiation workflow's draft or style transfer (stiff, templated)"),
]


def ensure_default_labels(label_model: Any) -> None:
    """Add the default labels that are missing (by name); never changes or removes a curator's edits."""
    for position, (name, description) in enumerate(DEFAULT_LABELS, start=1):
        label_model.objects.get_or_create(name=name, defaults={"description": description, "position": position})
