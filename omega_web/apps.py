from django.contrib.admin.apps import AdminConfig


class OmegaAdminConfig(AdminConfig):
    default_site = "omega_web.admin.OmegaAdminSite"
