"""Roles and what each may do: the one permission matrix of the project.

Roles are Django groups (created by a migration). They are cumulative: each role can do everything the one
before it can. Views declare the capability they need with `@requires(...)`; websocket consumers call
`has_capability`. `docs/permissions.md` shows this matrix, and a test keeps the two identical.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


class Role(StrEnum):
    VIEWER = "viewer"
    ANNOTATOR = "annotator"
    RESEARCHER = "researcher"
    CURATOR = "curator"
    ADMIN = "admin"


ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.ANNOTATOR, Role.RESEARCHER, Role.CURATOR, Role.ADMIN)


class Capability(StrEnum):
    VIEW = "view"  # read every page: tasks, runs, dialogues, evaluations
    ANNOTATE = "annotate"  # label and rate turns, decide on dialogues
    IMPORT_TASKS = "import_tasks"  # upload task files
    RUN = "run"  # launch, step, pause, fork and evaluate runs
    CURATE = "curate"  # adjudicate, build and export corpora
    ADMINISTER = "administer"  # users, roles, deletion, Django admin


# The capability each role adds to the one before it.
ROLE_ADDS: dict[Role, tuple[Capability, ...]] = {
    Role.VIEWER: (Capability.VIEW,),
    Role.ANNOTATOR: (Capability.ANNOTATE,),
    Role.RESEARCHER: (Capability.IMPORT_TASKS, Capability.RUN),
    Role.CURATOR: (Capability.CURATE,),
    Role.ADMIN: (Capability.ADMINISTER,),
}

CAPABILITY_HELP: dict[Capability, str] = {
    Capability.VIEW: "Read everything: tasks, runs, dialogues, LLM calls, evaluations",
    Capability.ANNOTATE: "Label, rate and correct turns; decide on dialogues",
    Capability.IMPORT_TASKS: "Import task files and corpora (CLI or upload form)",
    Capability.RUN: "Launch, step, pause, fork and evaluate runs; make prompt sets",
    Capability.CURATE: "Adjudicate decisions, build corpora, download exports",
    Capability.ADMINISTER: "Manage users and roles, delete data, Django admin",
}


def role_capabilities(role: Role) -> frozenset[Capability]:
    granted: set[Capability] = set()
    for r in ROLE_ORDER[: ROLE_ORDER.index(role) + 1]:
        granted.update(ROLE_ADDS[r])
    return frozenset(granted)


def minimum_role(capability: Capability) -> Role:
    return next(role for role in ROLE_ORDER if capability in role_capabilities(role))


def user_role(user: Any) -> Role | None:
    """The highest role the user holds, or None (an account without a role sees nothing)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    names = getattr(user, "_omega_group_names", None)
    if names is None:
        names = set(user.groups.values_list("name", flat=True))
        user._omega_group_names = names
    held = [role for role in ROLE_ORDER if role.value in names]
    return held[-1] if held else None


def has_capability(user: Any, capability: Capability) -> bool:
    role = user_role(user)
    return role is not None and capability in role_capabilities(role)


def requires(capability: Capability) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """View decorator: 403 unless the logged-in user's role grants `capability`.

    Anonymous users never get here: LoginRequiredMiddleware sends them to the login page first.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not has_capability(request.user, capability):
                raise PermissionDenied(f"This needs the {minimum_role(capability)} role or higher.")
            return view(request, *args, **kwargs)

        wrapped.required_capability = capability  # type: ignore[attr-defined]
        return wrapped

    return decorator


def capability_map(user: Any) -> dict[str, bool]:
    """{"view": True, "run": False, …} for templates (`{% if can.run %}`)."""
    role = user_role(user)
    granted = role_capabilities(role) if role else frozenset()
    return {cap.value: cap in granted for cap in Capability}


def role_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the user's role and the `can` map."""
    user = getattr(request, "user", None)
    return {"omega_role": user_role(user), "can": capability_map(user)}


def permission_matrix_markdown() -> str:
    """The matrix as a Markdown table; docs/permissions.md embeds exactly this text."""
    header = "| capability | " + " | ".join(role.value for role in ROLE_ORDER) + " |"
    rule = "|---|" + "---|" * len(ROLE_ORDER)
    rows = [
        f"| {CAPABILITY_HELP[cap]} (`{cap.value}`) | "
        + " | ".join("yes" if cap in role_capabilities(role) else "—" for role in ROLE_ORDER)
        + " |"
        for cap in Capability
    ]
    return "\n".join([header, rule, *rows])
