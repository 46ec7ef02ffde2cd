"""The admin's users: the role shown in the list, set with one choice (or for many users at once with an action),
in place of Django's dual list of groups. Registered from OmegaWebConfig.ready(), after django.contrib.auth's own
UserAdmin, which it replaces."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest

from omega_web.roles import ROLE_ORDER, Role, user_role

# --- users: the role shown in the list and set with one choice ---------------------------------------------------
# A role is membership of the group of that name (docs/permissions.md); the highest one held counts. Here a user
# has exactly one: the form sets it, replacing any other role group (groups that are not roles are kept).

ROLE_CHOICES = [("", "no role (sees nothing)")] + [(role.value, role.value) for role in ROLE_ORDER]


def role_set(user: Any, role: str) -> None:
    """Give `user` exactly this role ("" for none): the role groups it held are replaced, other groups kept."""
    user.groups.remove(*Group.objects.filter(name__in=[r.value for r in ROLE_ORDER]))
    if role:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    user.__dict__.pop("_omega_group_names", None)


class RoleFormMixin(forms.Form):
    role = forms.ChoiceField(
        choices=ROLE_CHOICES,
        required=False,
        help_text="What this account may do: the roles and their capabilities are in docs/permissions.md. A superuser "
        "is an admin whatever is chosen here.",
    )


class UserRoleChangeForm(RoleFormMixin, UserChangeForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            held = set(self.instance.groups.values_list("name", flat=True))
            roles = [role.value for role in ROLE_ORDER if role.value in held]
            self.fields["role"].initial = roles[-1] if roles else ""


class UserRoleCreationForm(RoleFormMixin, AdminUserCreationForm):
    pass


class OmegaUserAdmin(UserAdmin):
    form = UserRoleChangeForm
    add_form = UserRoleCreationForm
    list_display = ("username", "role", "email", "is_active")
    list_filter = ("groups", "is_active", "is_superuser")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Role", {"fields": ("role", "is_active", "is_superuser")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "usable_password", "password1", "password2", "role")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="role")
    def role(self, user: Any) -> str:
        role = user_role(user) if user.is_active else None
        if not user.is_active:
            return "inactive"
        return role.value if role else "no role"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        role_set(obj, form.cleaned_data.get("role", ""))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        role_set(form.instance, form.cleaned_data.get("role", ""))  # after the m2m save, which would undo it

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        for role in ROLE_ORDER:

            def act(modeladmin: Any, request: HttpRequest, queryset: QuerySet, role: Role = role) -> None:
                for user in queryset:
                    role_set(user, role.value)
                modeladmin.message_user(request, f"{queryset.count()} user(s) now have the role {role.value}.")

            actions[f"make_{role.value}"] = (
                act,
                f"make_{role.value}",
                f"Set role: {role.value}",
            )
        return actions


def register() -> None:
    User = get_user_model()
    if admin.site.is_registered(User):
        admin.site.unregister(User)
    admin.site.register(User, OmegaUserAdmin)
