"""python manage.py runs {list,status,pause,resume,cancel} [ID] [--dialogue] [--budget-tokens N]"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dialogues.runs.lifecycle import dialogue_cancel, dialogue_pause, dialogue_resume, run_cancel, run_pause, run_resume
from dialogues.runs.models import Dialogue, Run
from dialogues.runs.selectors import run_progress
from dialogues.runs.worker import enqueue_steps


class Command(BaseCommand):
    help = (
        "Follow and steer runs: list them, show one's progress (counted from the database), pause, resume or "
        "cancel a run, or with --dialogue one dialogue. A paused run's dialogues finish the step they are on, then "
        "wait; a paused dialogue drops a step in flight, which is redone when it resumes."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "status", "pause", "resume", "cancel"])
        parser.add_argument("id", type=int, nargs="?", help="run id (or dialogue id with --dialogue)")
        parser.add_argument("--dialogue", action="store_true", help="the id is a dialogue's")
        parser.add_argument("--budget-tokens", type=int, help="resume: a new token budget")

    def handle(self, *args, action: str, id: int | None, dialogue: bool, budget_tokens: int | None, **options):
        if action == "list":
            for run in Run.objects.order_by("-id")[:50]:
                progress = run_progress(run)
                self.stdout.write(
                    f"#{run.pk:<5} {progress['status']:<9} {run.variant:<4} {run.model:<24} "
                    f"{progress['settled']}/{progress['tasks']} tasks  {run.name}"
                )
            return
        if id is None:
            raise CommandError(f"`runs {action}` needs an id")
        if dialogue:
            self._dialogue(action, id)
        else:
            self._run(action, id, budget_tokens)

    def _enqueue(self, dispatches) -> None:
        if settings.CELERY_BROKER_URL.startswith("memory://"):
            # embedded mode: the serving process's reconciler picks the run up within OMEGA_RECONCILE_SECONDS
            return
        enqueue_steps(dispatches)

    def _run(self, action: str, run_id: int, budget: int | None) -> None:
        if not Run.objects.filter(pk=run_id).exists():
            raise CommandError(f"no run #{run_id}")
        if action == "pause":
            run_pause(run_id=run_id)
        elif action == "resume":
            try:
                self._enqueue(run_resume(run_id=run_id, token_budget=budget))
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        elif action == "cancel":
            run_cancel(run_id=run_id)
        run = Run.objects.get(pk=run_id)
        p = run_progress(run)
        reason = f" ({p['status_reason']})" if p["status_reason"] else ""
        self.stdout.write(
            f"Run #{run.pk} {p['status']}{reason}: {p['settled']}/{p['tasks']} tasks settled; attempts: "
            f"{p['pending']} pending, {p['running']} running, {p['paused']} paused, {p['finished']} finished, "
            f"{p['failed']} failed, {p['cancelled']} cancelled; {p['kept']} kept; "
            f"late agreements {p['late_agreements']} ({p['late_only']} failed only for that); {p['turns']} turns, "
            f"{p['calls']} LLM calls, {p['tokens']:,} tokens"
            + (f" of a {run.token_budget:,} budget" if run.token_budget else "")
        )

    def _dialogue(self, action: str, dialogue_id: int) -> None:
        if not Dialogue.objects.filter(pk=dialogue_id).exists():
            raise CommandError(f"no dialogue #{dialogue_id}")
        if action == "pause":
            dialogue_pause(dialogue_id=dialogue_id)
        elif action == "resume":
            self._enqueue(dialogue_resume(dialogue_id=dialogue_id))
        elif action == "cancel":
            dialogue_cancel(dialogue_id=dialogue_id)
        d = Dialogue.objects.get(pk=dialogue_id)
        self.stdout.write(
            f"Dialogue #{d.pk} (run #{d.run_id}, attempt {d.attempt + 1}) {d.status}; {d.turns.count()} turns"
        )
