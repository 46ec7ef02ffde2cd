"""`sotopia-sft`: LLaMA-Factory alpaca records per METHOD.md §2.6, registered as `sotopia_omega`.

One record per agent action (leave included): instruction = the plain SOTOPIA agent prompt exactly as that agent
saw it at that turn (its view of the context, the history, `You are at Turn #k`, the action types, the output
format), input = "", output = the action JSON. No strategy text or reasoning. A curator's correction replaces the
text in its record and in the histories of later records (or, with corrections="cut", the dialogue stops before it).
"""

from __future__ import annotations

from typing import Any

from dialogues.corpora.data import DialogueData
from dialogues.corpora.formats.base import ExportOptions, Lines, action_json, trainable_turns

FILE = "sotopia_omega.jsonl"


class SotopiaSft:
    name = "sotopia-sft"
    title = "SOTOPIA SFT (LLaMA-Factory alpaca)"
    description = "One record per agent action: the plain agent prompt as instruction, the action JSON as output."
    files = (FILE,)

    def write(self, dialogue: DialogueData, out: dict[str, Lines], options: ExportOptions) -> None:
        for turn in trainable_turns(dialogue, options):
            out[FILE].write(
                {
                    "instruction": dialogue.prompt(turn.index),
                    "input": "",
                    "output": action_json(turn.action_type, turn.text),
                }
            )

    def dataset_info(self) -> dict[str, Any]:
        return {
            "sotopia_omega": {
                "file_name": FILE,
                "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output"},
            }
        }


FORMAT = SotopiaSft()
