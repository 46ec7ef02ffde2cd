"""Full fidelity: one JSON line per task, then one per dialogue with every turn (strategy, reason, NSI step,
proposal, draft, utilities, rating with every judge sample), the annotations, decisions and adjudication, people's
answers to the judges' questions (calibration), the corrections (original and applied text), and optionally every
LLM call. What a re-import needs."""

from __future__ import annotations

from typing import Any

from dialogues.corpora.data import DialogueData
from dialogues.corpora.formats.base import ExportOptions, Lines

TASKS = "omega_tasks.jsonl"
DIALOGUES = "omega_dialogues.jsonl"
SCHEMA = "omega-web/full/3"  # 2: keys that survive a re-import; contexts, source. 3: people's judge ratings


class FullJsonl:
    name = "full"
    title = "Full fidelity JSONL"
    description = "Tasks and dialogues with strategies, utilities, ratings, annotations (LLM calls optional)."
    files = (TASKS, DIALOGUES)

    def write(self, dialogue: DialogueData, out: dict[str, Lines], options: ExportOptions) -> None:
        task_id = dialogue.task["external_id"]
        if task_id not in out[TASKS].seen:  # each task once, before its first dialogue
            out[TASKS].seen.add(task_id)
            out[TASKS].write({"schema": SCHEMA, "type": "task", **dialogue.task})
        record: dict[str, Any] = {
            "schema": SCHEMA,
            "type": "dialogue",
            "key": dialogue.key,
            "task": task_id,
            "run": {k: v for k, v in dialogue.run.items() if k != "id"},
            "attempt": dialogue.attempt,
            "seed": dialogue.seed,
            "simulated": dialogue.simulated,
            "kept": dialogue.kept,
            "filter_passed": dialogue.filter_passed,
            "filter_note": dialogue.filter_note,
            "final_goal_c": dialogue.final_goal_c,
            "final_goal_p": dialogue.final_goal_p,
            "nsi_used": dialogue.nsi_used,
            "end_reason": dialogue.end_reason,
            "source": dialogue.source,
            "turns": [
                {
                    "index": t.index,
                    "speaker": t.speaker,
                    "action_type": t.action_type,
                    "argument": t.argument,
                    "corrected": t.corrected,
                    "correction_reason": t.correction_reason,
                    "branch": t.branch,
                    "forced": t.forced,
                    "reason": t.reason,
                    "nsi_step": t.nsi_step,
                    "proposal": t.proposal,
                    "draft": t.draft,
                    "own_utility": t.own_utility,
                    "other_utility": t.other_utility,
                    "human": t.human,
                    "rating": t.rating,
                    "annotations": t.annotations,
                    "judge_ratings": t.judge_ratings,
                    "extra": t.extra,
                }
                for t in dialogue.turns
            ],
            "decisions": dialogue.decisions,
            "adjudication": dialogue.adjudication,
            "episode_ratings": dialogue.episode_ratings,
        }
        if options.llm_calls:
            record["llm_calls"] = dialogue.calls or []
        out[DIALOGUES].write(record)

    def dataset_info(self) -> dict[str, Any]:
        return {}  # not a training format


FORMAT = FullJsonl()
