"""Preference data for DPO and KTO, from two sources:

- **kept vs rejected attempts** of a task: the two attempts share their history up to the first turn where they
  differ; there the kept attempt's action is chosen and the other's rejected, under the prompt both agents saw.
  Only attempts that failed the filter are paired with the kept one, and only when it passed.
- **corrected vs original turns**: at a turn a curator corrected, the correction is chosen and the original
  rejected, under the prompt as the speaker saw it (earlier corrections applied).

`sotopia_omega_dpo.jsonl` holds the pairs (alpaca ranking: instruction, input, chosen, rejected);
`sotopia_omega_kto.jsonl` the same judgements as single examples with `kto_tag` true / false.

Pairs need the task's other attempts, which may not be in the corpus: they are read for each kept dialogue.
"""

from __future__ import annotations

from typing import Any

from dialogues.corpora.data import DialogueData, dialogues
from dialogues.corpora.formats.base import ExportOptions, Lines, action_json
from dialogues.runs.models import Dialogue, DialogueStatus

DPO = "sotopia_omega_dpo.jsonl"
KTO = "sotopia_omega_kto.jsonl"


def _same(a: Any, b: Any) -> bool:
    return (a.speaker, a.action_type, a.text) == (b.speaker, b.action_type, b.text)


def attempt_pairs(kept: DialogueData, other: DialogueData) -> dict[str, Any] | None:
    """The first turn where a rejected attempt departs from the kept one, as a preference pair."""
    for mine, theirs in zip(kept.turns, other.turns, strict=False):
        if _same(mine, theirs):
            continue
        if mine.speaker != theirs.speaker or mine.human or theirs.human:
            return None
        return {
            "instruction": kept.prompt(mine.index),
            "input": "",
            "chosen": action_json(mine.action_type, mine.text),
            "rejected": action_json(theirs.action_type, theirs.text),
            "source": "attempts",
            "dialogue": kept.key,
            "rejected_dialogue": other.key,
            "turn": mine.index,
        }
    return None


def correction_pairs(dialogue: DialogueData, options: ExportOptions) -> list[dict[str, Any]]:
    pairs = []
    for turn in dialogue.turns:
        if turn.corrected is None or turn.corrected == turn.argument or (turn.human and options.exclude_human_turns):
            continue
        pairs.append(
            {
                "instruction": dialogue.prompt(turn.index),
                "input": "",
                "chosen": action_json(turn.action_type, turn.corrected),
                "rejected": action_json(turn.action_type, turn.argument),
                "source": "correction",
                "dialogue": dialogue.key,
                "turn": turn.index,
                "reason": turn.correction_reason,
            }
        )
        if options.corrections == "cut":
            break
    return pairs


class Preference:
    name = "preference"
    title = "Preference pairs (DPO / KTO)"
    description = "Kept vs rejected attempts at their first difference, corrected vs original turns."
    files = (DPO, KTO)

    def write(self, dialogue: DialogueData, out: dict[str, Lines], options: ExportOptions) -> None:
        pairs = correction_pairs(dialogue, options)
        if dialogue.kept and dialogue.filter_passed:
            rejected = list(
                Dialogue.objects.filter(
                    run_id=dialogue.run["id"],
                    task__external_id=dialogue.task["external_id"],
                    status=DialogueStatus.FINISHED,
                    filter_passed=False,
                )
                .exclude(pk=dialogue.id)
                .order_by("attempt")
                .values_list("pk", flat=True)
            )
            for other in dialogues(rejected, annotations=False):
                pair = attempt_pairs(dialogue, other)
                if pair is not None:
                    pairs.append(pair)
        for pair in pairs:
            out[DPO].write(pair)
            common = {"instruction": pair["instruction"], "input": ""}
            out[KTO].write({**common, "output": pair["chosen"], "kto_tag": True})
            out[KTO].write({**common, "output": pair["rejected"], "kto_tag": False})

    def dataset_info(self) -> dict[str, Any]:
        return {
            "sotopia_omega_dpo": {
                "file_name": DPO,
                "formatting": "alpaca",
                "ranking": True,
                "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"},
            },
            "sotopia_omega_kto": {
                "file_name": KTO,
                "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output", "kto_tag": "kto_tag"},
            },
        }


FORMAT = Preference()
