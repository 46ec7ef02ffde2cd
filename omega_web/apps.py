"""The project's app configurations: omega_web itself (its models: the login throttle) and the admin site."""

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class OmegaWebConfig(AppConfig):
    name = "omega_web"
    verbose_name = "omega-web (logins)"


class OmegaAdminConfig(AdminConfig):
    default_site = "omega_web.admin.OmegaAdminSite"
