"""The Celery application. Broker and options come from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omega_web.settings")

app = Celery("omega_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Tasks enqueued from view threads must find this app, not a fresh default one.
app.set_default()
