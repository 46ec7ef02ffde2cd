"""Importing task files through the browser: upload, then watch the job finish live."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dialogues.corpus_import.forms import CorpusImportForm
from dialogues.corpus_import.services import corpus_import_create, upload_path
from omega_web.roles import Capability, requires


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
    return render(request, "corpus_import/new.html", {"form": form}, status=400 if form.errors else 200)
