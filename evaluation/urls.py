"""Evaluation's pages: S-IF, judged evaluation jobs, reports, benchmark runs, the leaderboard."""

from django.urls import path

from evaluation import views
from evaluation.calibration import views as calibration

urlpatterns = [
    path("runs/<int:pk>/calibration/", calibration.run_calibration, name="run_calibration"),
    path("calibration/", calibration.calibration_index, name="calibration_index"),
    path("runs/<int:pk>/sif/", views.run_sif, name="run_sif"),
    path("runs/benchmark/new/", views.run_benchmark_new, name="run_benchmark_new"),
    path("runs/<int:pk>/manifest.json", views.run_manifest, name="benchmark_manifest"),
    path("runs/<int:pk>/repeat/", views.benchmark_repeat, name="benchmark_repeat"),
    path("runs/<int:pk>/report/", views.run_report, name="run_report"),
    path("runs/<int:pk>/report/<slug:table>.csv", views.run_report_csv, name="run_report_csv"),
    path("runs/<int:pk>/evaluate/", views.run_evaluate, name="run_evaluate"),
    path("corpora/<int:pk>/evaluate/", views.corpus_evaluate, name="corpus_evaluate"),
    path("evaluations/", views.evaluation_list, name="evaluation_list"),
    path("evaluations/compare/", views.evaluation_compare, name="evaluation_compare"),
    path("evaluations/leaderboard/", views.evaluation_leaderboard, name="evaluation_leaderboard"),
    path("evaluations/<int:pk>/", views.evaluation_detail, name="evaluation_detail"),
    path("evaluations/<int:pk>/cancel/", views.evaluation_cancel, name="evaluation_cancel"),
    path("dialogues/<int:pk>/sif/", views.dialogue_sif, name="dialogue_sif"),
    path("dialogues/<int:pk>/sif/agent-<int:number>.csv", views.dialogue_sif_csv, name="dialogue_sif_csv"),
    path("dialogues/<int:pk>/evaluate/", views.dialogue_evaluate, name="dialogue_evaluate"),
]
