from django.urls import path

from dialogues.views import annotation, dialogues, experiments, imports, runs, tasks

urlpatterns = [
    path("tasks/", tasks.task_list, name="task_list"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task_detail"),
    path("tasks/<int:pk>/context/<slug:viewer>/", tasks.task_context, name="task_context"),
    path("agents/<int:pk>/", tasks.agent_detail, name="agent_detail"),
    path("imports/", imports.import_list, name="import_list"),
    path("imports/new/", imports.import_create, name="import_create"),
    path("imports/<int:pk>/", imports.import_detail, name="import_detail"),
    path("runs/", runs.run_list, name="run_list"),
    path("runs/new/", runs.run_new, name="run_new"),
    path("runs/new/estimate/", runs.run_estimate_view, name="run_estimate"),
    path("runs/<int:pk>/", runs.run_detail, name="run_detail"),
    path("runs/<int:pk>/agreement/", annotation.run_agreement_view, name="run_agreement"),
    path("runs/<int:pk>/<slug:action>/", runs.run_action, name="run_action"),
    path("dialogues/", dialogues.dialogue_index, name="dialogue_list"),
    path("dialogues/compare/", experiments.dialogue_compare, name="dialogue_compare"),
    path("dialogues/<int:pk>/", dialogues.dialogue_detail, name="dialogue_detail"),
    path("dialogues/<int:pk>/fork/", experiments.dialogue_fork_view, name="dialogue_fork"),
    path("dialogues/<int:pk>/play/", experiments.dialogue_play, name="dialogue_play"),
    path("dialogues/<int:pk>/annotations/", annotation.dialogue_annotations, name="dialogue_annotations"),
    path("dialogues/<int:pk>/decision/", annotation.dialogue_decision, name="dialogue_decision"),
    path("dialogues/<int:pk>/adjudicate/", annotation.dialogue_adjudicate, name="dialogue_adjudicate"),
    path("turns/<int:pk>/annotation/", annotation.turn_annotation, name="turn_annotation"),
    path("annotate/", annotation.annotation_queue, name="annotation_queue"),
    path("annotate/next/", annotation.annotation_next, name="annotation_next"),
    path("labels/", annotation.label_list, name="label_list"),
    path("labels/edit/", annotation.label_edit, name="label_edit"),
    path("dialogues/<int:pk>/calls/<int:call_id>/", dialogues.dialogue_call, name="dialogue_call"),
    path("dialogues/<int:pk>/<slug:action>/", dialogues.dialogue_action, name="dialogue_action"),
]
