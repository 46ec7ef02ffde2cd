"""The project's own rows: none since the login throttle moved to django-axes (ADR 0020). The app keeps its
migrations, the last of which drops the old throttle's table."""
