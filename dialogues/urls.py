"""The pages of the dialogues app, by area (evaluation's pages are in evaluation/urls.py)."""

from django.urls import path

from dialogues.annotation import rating_views as ratings
from dialogues.annotation import views as annotation
from dialogues.corpora import views as corpora
from dialogues.corpus_import import views as corpus_import
from dialogues.experiments import views as experiments
from dialogues.inspection import views as inspection
from dialogues.library import views as tasks
from dialogues.runs import views as runs

urlpatterns = [
    path("tasks/", tasks.task_list, name="task_list"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task_detail"),
    path("tasks/<int:pk>/context/<slug:viewer>/", tasks.task_context, name="task_context"),
    path("agents/<int:pk>/", tasks.agent_detail, name="agent_detail"),
    path("imports/", tasks.import_list, name="import_list"),
    path("imports/new/", tasks.import_create, name="import_create"),
    path("imports/corpus/new/", corpus_import.import_corpus_create, name="import_corpus_create"),
    path("imports/<int:pk>/", tasks.import_detail, name="import_detail"),
    path("runs/", inspection.run_list, name="run_list"),
    path("runs/new/", runs.run_new, name="run_new"),
    path("runs/new/estimate/", runs.run_estimate_view, name="run_estimate"),
    path("runs/new/server/", runs.run_server_check, name="run_server_check"),
    path("runs/<int:pk>/", inspection.run_detail, name="run_detail"),
    path("runs/<int:pk>/cost/", runs.run_cost_view, name="run_cost"),
    path("runs/<int:pk>/agreement/", annotation.run_agreement_view, name="run_agreement"),
    path("runs/<int:pk>/calibration-queue/", ratings.calibration_queue_view, name="run_calibration_queue"),
    path("runs/<int:pk>/calibration-queue/next/", ratings.calibration_next_view, name="run_calibration_next"),
    path("runs/<int:pk>/<slug:action>/", inspection.run_action, name="run_action"),
    path("dialogues/", inspection.dialogue_index, name="dialogue_list"),
    path("dialogues/compare/", experiments.dialogue_compare, name="dialogue_compare"),
    path("dialogues/compare/ratings.csv", experiments.dialogue_compare_csv, name="dialogue_compare_csv"),
    path("dialogues/<int:pk>/", inspection.dialogue_detail, name="dialogue_detail"),
    path("dialogues/<int:pk>/ratings.csv", inspection.dialogue_ratings_csv, name="dialogue_ratings_csv"),
    path("dialogues/<int:pk>/fork/", experiments.dialogue_fork_view, name="dialogue_fork"),
    path("dialogues/<int:pk>/play/", experiments.dialogue_play, name="dialogue_play"),
    path("dialogues/<int:pk>/annotations/", annotation.dialogue_annotations, name="dialogue_annotations"),
    path("dialogues/<int:pk>/decision/", annotation.dialogue_decision, name="dialogue_decision"),
    path("dialogues/<int:pk>/adjudicate/", annotation.dialogue_adjudicate, name="dialogue_adjudicate"),
    path("turns/<int:pk>/annotation/", annotation.turn_annotation, name="turn_annotation"),
    path("turns/<int:pk>/judge-rating/", ratings.turn_judge_rating, name="turn_judge_rating"),
    path("dialogues/<int:pk>/sotopia-eval-rating/", ratings.dialogue_episode_rating, name="dialogue_episode_rating"),
    path("annotate/", annotation.annotation_queue, name="annotation_queue"),
    path("annotate/next/", annotation.annotation_next, name="annotation_next"),
    path("corpora/", corpora.corpus_list, name="corpus_list"),
    path("corpora/new/", corpora.corpus_edit, name="corpus_new"),
    path("corpora/counts/", corpora.corpus_counts, name="corpus_counts"),
    path("corpora/<int:pk>/", corpora.corpus_detail, name="corpus_detail"),
    path("corpora/<int:pk>/edit/", corpora.corpus_edit, name="corpus_edit"),
    path("corpora/<int:pk>/override/", corpora.corpus_override, name="corpus_override"),
    path("corpora/<int:pk>/export/", corpora.corpus_export_view, name="corpus_export"),
    path("corpora/<int:pk>/versions/", corpora.corpus_versions, name="corpus_versions"),
    path("corpora/versions/<int:pk>/download/", corpora.corpus_download, name="version_download"),
    path("prompts/", experiments.prompt_set_list, name="prompt_set_list"),
    path("prompts/diff/", experiments.prompt_set_diff, name="prompt_set_diff"),
    path("prompts/import/", experiments.prompt_set_upload, name="prompt_set_upload"),
    path("prompts/sets/<str:name>/", experiments.prompt_set_detail, name="prompt_set_detail"),
    path("prompts/sets/<str:name>/copy/", experiments.prompt_set_copy, name="prompt_set_copy"),
    path("prompts/sets/<str:name>/export/", experiments.prompt_set_export, name="prompt_set_export"),
    path("labels/", annotation.label_list, name="label_list"),
    path("labels/edit/", annotation.label_edit, name="label_edit"),
    path("dialogues/<int:pk>/calls/<int:call_id>/", inspection.dialogue_call, name="dialogue_call"),
    path("dialogues/<int:pk>/<slug:action>/", inspection.dialogue_action, name="dialogue_action"),
]
