"""The omega-web Django project: settings, URLs, ASGI application and the Celery app; also an app of its own
(OmegaWebConfig) for the login throttle's model."""

from .celery import app as celery_app

__all__ = ("celery_app",)
