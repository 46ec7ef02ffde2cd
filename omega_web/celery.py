"""The Celery application. Broker and options come from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omega_web.settings")

app = Celery("omega_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each area keeps its tasks in its own tasks module; the task names stay as they were before the areas existed,
# since queued messages, routes and worker logs name them.
app.autodiscover_tasks(["dialogues.library", "dialogues.runs", "dialogues.corpora", "evaluation"])
# Tasks enqueued from view threads must find this app, not a fresh default one.
app.set_default()
