"""The export formats: a registry, one module per format. Each format writes lines into the files it names, one
dialogue at a time, and declares its LLaMA-Factory `dataset_info.json` entries (what they share is in base.py)."""

from __future__ import annotations

from dialogues.corpora.formats import chat, full_jsonl, preference, sotopia_sft
from dialogues.corpora.formats.base import ExportOptions, Format, Lines, action_json, trainable_turns

__all__ = ["ExportOptions", "Format", "Lines", "action_json", "registry", "trainable_turns"]

REGISTRY: dict[str, Format] = {
    f.name: f for f in (sotopia_sft.FORMAT, chat.SHAREGPT, chat.OPENAI, full_jsonl.FORMAT, preference.FORMAT)
}


def registry() -> dict[str, Format]:
    return REGISTRY
