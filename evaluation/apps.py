from django.apps import AppConfig

from dialogues.common.pages import register


class EvaluationConfig(AppConfig):
    name = "evaluation"
    verbose_name = "Evaluation (S-IF, SOTOPIA-EVAL)"

    def ready(self) -> None:
        from evaluation.pages import corpus_evaluations  # imports models: only once the registry is ready

        register("corpus_detail", corpus_evaluations)
