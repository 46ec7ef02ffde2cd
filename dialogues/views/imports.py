"""Importing task files through the browser: upload, then watch the job finish live."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from dialogues import selectors, services
from dialogues.forms import ImportUploadForm
from dialogues.models import ImportJob
from omega_web.roles import Capability, requires


@requires(Capability.VIEW)
def import_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.import_job_list(), 20).get_page(request.GET.get("page"))
    return render(request, "dialogues/imports/list.html", {"page": page})


@requires(Capability.IMPORT_TASKS)
def import_create(request: HttpRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = services.import_job_create(
            created_by=request.user,
            origin="upload",
            split=form.cleaned_data["split"],
            source=form.cleaned_data["source"],
            files=form.files_by_kind(),
            enqueue=True,
        )
        return redirect("import_detail", pk=job.pk)
    return render(request, "dialogues/imports/new.html", {"form": form}, status=400 if form.errors else 200)


@requires(Capability.VIEW)
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=pk)
    return render(request, "dialogues/imports/detail.html", {"job": job})
