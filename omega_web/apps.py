"""The project's app configurations: omega_web itself (its models: the login throttle) and the admin site."""

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class OmegaWebConfig(AppConfig):
    name = "omega_web"
    verbose_name = "omega-web (logins)"

    def ready(self) -> None:
        from omega_web.user_admin import register  # the admin's users with their role (replaces auth's UserAdmin)

        register()


class OmegaAdminConfig(AdminConfig):
    default_site = "omega_web.admin.OmegaAdminSite"
