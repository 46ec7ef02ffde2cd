"""An authentication backend that only answers permission questions: the admin role holds every model
permission, so Django admin works for members of the admin group, not just for superusers."""

from typing import Any

from omega_web.roles import Capability, has_capability


class RoleBackend:
    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def get_user(self, user_id: int) -> None:
        return None

    def has_perm(self, user: Any, perm: str, obj: Any = None) -> bool:
        return has_capability(user, Capability.ADMINISTER)

    def has_module_perms(self, user: Any, app_label: str) -> bool:
        return has_capability(user, Capability.ADMINISTER)
