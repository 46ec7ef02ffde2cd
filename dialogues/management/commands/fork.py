"""python manage.py fork DIALOGUE --turn K [changes] [--batch N --b-… changes] — fork a dialogue from a turn.

Examples:
    python manage.py fork 12 --turn 7 --disable NSI
    python manage.py fork 12 --turn 5 --set nsi_goal_c_max=7 --seed 99
    python manage.py fork 12 --turn 5 --batch 8 --b-force NSI      # 8 seeds × (A: as the parent, B: NSI forced)
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dialogues.engine.config import RunConfig
from dialogues.experiments.services import Arm, ForkSettings, batch_seeds, dialogue_fork
from dialogues.inspection.forks import batch_summary, change_rows
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.lifecycle import run_dispatch
from dialogues.runs.models import Dialogue
from dialogues.runs.worker import enqueue_steps

NUMBERS = {
    f.name: type(f.default)
    for f in fields(RunConfig)
    if isinstance(f.default, int | float | bool | str) and f.name not in {"variant", "model", "seed"}
}


def _value(name: str, text: str) -> Any:
    if name == "temperature":
        return {"temperature": float(text)}
    kind = NUMBERS.get(name)
    if kind is None:
        names = ", ".join(sorted([*NUMBERS, "temperature"]))
        raise CommandError(f"--set {name}=…: not a setting a fork can change (one of: {names})")
    if kind is bool:
        return text.lower() in {"1", "true", "yes", "on"}
    try:
        return kind(text)
    except ValueError as bad:
        raise CommandError(f"--set {name}={text}: not a valid {kind.__name__}") from bad


def _settings(options: dict[str, Any], prefix: str, *, human_side: int | None = None) -> ForkSettings:
    prefix = prefix.replace("-", "_")  # the option "--b-set" is stored as "b_set"
    config: dict[str, Any] = {}
    for item in options[f"{prefix}set"] or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise CommandError(f"--{prefix}set {item!r}: write name=value")
        key = "sampling" if name == "temperature" else name
        config[key] = _value(name, text)
    if options[f"{prefix}force"]:
        config["force_strategy"] = options[f"{prefix}force"]
    if options[f"{prefix}disable"]:
        config["disabled_strategies"] = sorted(set(options[f"{prefix}disable"]))
    prompt_set = None
    if options[f"{prefix}prompt_set"]:
        try:
            prompt_set = prompt_set_get(options[f"{prefix}prompt_set"])
        except PromptSetMissing as exc:
            raise CommandError(str(exc)) from exc
    return ForkSettings(
        model=options[f"{prefix}model"] or "", config=config, human_side=human_side, prompt_set=prompt_set
    )


class Command(BaseCommand):
    help = "Fork a dialogue from a turn with changed settings (or N seeds × two settings), run it, print the outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dialogue_id", type=int)
        parser.add_argument("--turn", type=int, required=True, help="Share turns 0..K (-1: share nothing)")
        parser.add_argument("--seed", type=int, help="One fork: another seed (default: the parent's, a replay)")
        for prefix, who in (("", "setting A (the fork)"), ("b-", "setting B (with --batch)")):
            parser.add_argument(f"--{prefix}set", action="append", metavar="NAME=VALUE", help=f"{who}: a value")
            parser.add_argument(f"--{prefix}force", choices=["NSC", "SSI", "NSI"], help=f"{who}: force a strategy")
            parser.add_argument(f"--{prefix}disable", action="append", choices=["SSI", "NSI"], help=f"{who}: disable")
            parser.add_argument(f"--{prefix}model", help=f"{who}: another served model")
            parser.add_argument(f"--{prefix}prompt-set", metavar="NAME", help=f"{who}: another prompt set")
        parser.add_argument("--batch", type=int, metavar="N", help="N seeds per setting: a counterfactual batch")
        parser.add_argument("--batch-seed", type=int, default=0, help="The seed the batch's seeds are drawn from")
        parser.add_argument("--human-side", type=int, choices=[0, 1], help="Leave this side to a person (browser)")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--paused", action="store_true", help="Create the forks paused; step them later")
        where.add_argument("--celery", action="store_true", help="Enqueue to the workers instead of running here")

    def handle(self, *args: Any, dialogue_id: int, **options: Any) -> None:
        parent = Dialogue.objects.select_related("run", "task").filter(pk=dialogue_id).first()
        if parent is None:
            raise CommandError(f"no dialogue #{dialogue_id}")
        batch = options["batch"]
        a = _settings(options, "", human_side=options["human_side"])
        arms = [Arm("", replace(a, seed=options["seed"]))]
        seeds: list[int | None] = [None]
        turn = options["turn"] if options["turn"] >= 0 else None
        if batch:
            if batch < 2 or options["human_side"] is not None:
                raise CommandError("--batch needs N ≥ 2 and no --human-side (a person plays one fork at a time)")
            arms = [Arm("A", a), Arm("B", _settings(options, "b-"))]
            if arms[0].settings == arms[1].settings:
                raise CommandError(
                    "settings A and B are the same: give B a change "
                    "(--b-set, --b-force, --b-disable, --b-model, --b-prompt-set)"
                )
            seeds = batch_seeds(parent, turn, options["batch_seed"], batch)
        try:
            run = dialogue_fork(
                parent_id=parent.pk, turn=turn, arms=arms, seeds=seeds, created_by=None, start_paused=options["paused"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        forks = list(run.dialogues.select_related("run", "task__agent1", "task__agent2").order_by("attempt"))
        self.stdout.write(f"Run #{run.pk} ({run.name}): {len(forks)} fork{'s' if len(forks) != 1 else ''}.")
        for row in change_rows(forks[0]) if not batch else []:
            self.stdout.write(f"  {row['name']}: {row['before']} → {row['after']}")
        if options["paused"]:
            self.stdout.write(f"Paused: step with `python manage.py step {forks[0].pk}` or in the browser.")
            return
        if options["celery"]:
            enqueue_steps(run_dispatch(run_id=run.pk))
            self.stdout.write(f"Enqueued; follow with `python manage.py runs status {run.pk}`.")
            return
        status = run_coroutine(lambda llms: run_to_end(run.pk, llms))
        self._outcome(run, parent, status)

    def _outcome(self, run: Any, parent: Dialogue, status: str) -> None:
        summary = batch_summary(run)
        parent_outcome = summary["parent_outcome"]
        if parent_outcome:
            self.stdout.write(
                f"Parent #{parent.pk}: final goal_c {_num(parent_outcome['goal_c'])}, "
                f"turns to agreement {parent_outcome['agreement'] or 'none'}."
            )
        columns = ("setting", 10, "<"), ("finished", 9, ">"), ("goal_c mean", 12, ">"), ("sd", 6, ">")
        columns += ("agreement", 10, ">"), ("none", 5, ">"), ("NSI", 4, ">")
        self.stdout.write(" ".join(f"{name:{align}{width}}" for name, width, align in columns))
        for arm in summary["arms"]:
            goal, agreement = arm["goal_c"], arm["agreement"]
            self.stdout.write(
                f"{arm['label']:<10} {arm['finished']:>4} / {len(arm['outcomes']):<2} {_num(goal.get('mean')):>12} "
                f"{_num(goal.get('sd')):>6} {_num(agreement.get('mean'), 1):>10} {arm['no_agreement']:>5} "
                f"{arm['nsi']:>4}"
            )
        for arm in summary["arms"]:
            for outcome in arm["outcomes"]:
                fork = outcome["dialogue"]
                fork.refresh_from_db()
                reason = f" · {fork.failure_reason}" if fork.failure_reason else ""
                self.stdout.write(
                    f"  #{fork.pk} {arm['label']} seed {fork.seed}: {fork.status}, goal_c {_num(fork.final_goal_c)}"
                    f"{reason}"
                )
        self.stdout.write(f"Run status: {status}. Compare: /dialogues/compare/?a={parent.pk}&b=<fork id>")


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
