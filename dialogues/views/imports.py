"""Importing task files through the browser: upload, then watch the job finish live."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from dialogues import selectors, services
from dialogues.forms import CorpusImportForm, ImportUploadForm
from dialogues.models import ImportJob
from dialogues.services.corpus_import import corpus_import_create, upload_path
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


@requires(Capability.IMPORT_TASKS)
def import_corpus_create(request: HttpRequest) -> HttpResponse:
    """Upload a corpus file: it is written to the import directory in chunks and read there by a worker."""
    form = CorpusImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        path = upload_path(upload.name)
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        job = corpus_import_create(
            created_by=request.user,
            origin="upload",
            path=path,
            name=upload.name,
            format=form.cleaned_data["format"],
            skip_bad=form.cleaned_data["skip_bad"],
            split=form.cleaned_data["split"],
            enqueue=True,
        )
        return redirect("import_detail", pk=job.pk)
    return render(request, "dialogues/imports/corpus_new.html", {"form": form}, status=400 if form.errors else 200)
