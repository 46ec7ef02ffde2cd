"""python manage.py step DIALOGUE_ID — advance one dialogue by exactly one turn (and its rating, when due)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dialogues.runs.driving import run_coroutine, step_dialogue
from dialogues.runs.lifecycle import run_refresh_status
from dialogues.runs.models import Dialogue, Turn


class Command(BaseCommand):
    help = "Advance one dialogue by one step and print what the engine did and why."

    def add_arguments(self, parser):
        parser.add_argument("dialogue_id", type=int)

    def handle(self, *args, dialogue_id: int, **options):
        dialogue = Dialogue.objects.select_related("run").filter(pk=dialogue_id).first()
        if dialogue is None:
            raise CommandError(f"no dialogue #{dialogue_id}")
        run = dialogue.run
        report = run_coroutine(lambda llms: step_dialogue(dialogue_id, llms))
        if report.kind == "skipped":
            raise CommandError(f"dialogue #{dialogue_id}: {report.failure}; nothing to do")
        if report.kind == "failed":
            run_refresh_status(run_id=run.pk)
            dialogue.refresh_from_db()
            self._report_next_attempt(dialogue)
            raise CommandError(f"dialogue #{dialogue_id} failed: {report.failure}")
        if report.turn_index is not None:
            turn = Turn.objects.select_related("rating").get(dialogue_id=dialogue_id, index=report.turn_index)
            self.stdout.write(self._describe(turn, dialogue))
        if report.finished:
            dialogue.refresh_from_db()
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dialogue finished ({dialogue.end_reason}); final goal_c {dialogue.final_goal_c}; "
                    f"{dialogue.filter_note}."
                )
            )
            self._report_next_attempt(dialogue)
        run_refresh_status(run_id=run.pk)

    def _report_next_attempt(self, dialogue: Dialogue) -> None:
        following = Dialogue.objects.filter(
            run_id=dialogue.run_id, task_id=dialogue.task_id, attempt=dialogue.attempt + 1
        ).first()
        if following is not None:
            self.stdout.write(
                f"The filter asks for another attempt: dialogue #{following.pk} (attempt {following.attempt + 1})."
            )
        elif dialogue.kept:
            self.stdout.write("This attempt is kept.")

    @staticmethod
    def _describe(turn: Turn, dialogue: Dialogue) -> str:
        names = [dialogue.task.agent1.full_name, dialogue.task.agent2.full_name]
        step = f" · {turn.nsi_step}" if turn.nsi_step else ""
        proposal = f" · {turn.proposal}" if turn.proposal else ""
        lines = [
            f"Turn #{turn.index} · {names[turn.speaker]} · {turn.branch}{step}{proposal}"
            f"{' · forced' if turn.forced else ''}",
            f"  why: {turn.reason}",
            f"  {turn.action_type}: {turn.argument}",
        ]
        rating = getattr(turn, "rating", None)
        if rating is not None:
            lines.append(
                f"  rating: goal_c {rating.goal_c:.2f}, goal_p {rating.goal_p:.2f}, "
                f"{rating.valid}/{rating.requested} samples valid, "
                f"{'ends' if rating.terminate else 'goes on'}"
            )
        return "\n".join(lines)
