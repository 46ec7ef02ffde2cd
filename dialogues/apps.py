from django.apps import AppConfig


class DialoguesConfig(AppConfig):
    name = "dialogues"
    verbose_name = "Dialogues and task library"

    def ready(self) -> None:
        # The library runs every import job; corpus_import, which sits above it, says how a corpus import runs.
        # Done here, in every process (web, worker, command), before any job can run; imported here because
        # models may only be imported once the apps are loaded.
        from dialogues.corpus_import.services import corpus_import_register

        corpus_import_register()
