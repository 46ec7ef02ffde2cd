from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView

from omega_web.roles import Capability, requires


@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and the test harness: says the process is up, reveals nothing else."""
    return JsonResponse({"status": "ok"})


home = requires(Capability.VIEW)(RedirectView.as_view(pattern_name="task_list"))

urlpatterns = [
    path("", home, name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),  # limited by django-axes (omega_web/login.py)
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # evaluation first: the dialogues app ends its run and dialogue routes with catch-all actions
    path("", include("evaluation.urls")),
    path("", include("dialogues.urls")),
]
