"""Django admin, open to the admin role (not only to superusers)."""

from django.contrib import admin
from django.http import HttpRequest

from omega_web.roles import Capability, has_capability


class OmegaAdminSite(admin.AdminSite):
    site_header = "omega-web administration"
    site_title = "omega-web admin"
    index_title = "Users, roles and the task library"

    def has_permission(self, request: HttpRequest) -> bool:
        return has_capability(request.user, Capability.ADMINISTER)
