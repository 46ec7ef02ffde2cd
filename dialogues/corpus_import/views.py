"""Importing a dialogue corpus through the browser: the upload page, which hands the file to a worker and sends
the user to the import's page (the library's, shared by every kind of import) to watch it finish live."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dialogues.corpus_import.forms import CorpusImportForm
from dialogues.corpus_import.services import corpus_import_upload
from omega_web.roles import Capability, requires


@requires(Capability.IMPORT_TASKS)
def import_corpus_create(request: HttpRequest) -> HttpResponse:
    """Upload a corpus file: it is kept in the import directory and read there by a worker."""
    form = CorpusImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = corpus_import_upload(
            created_by=request.user,
            upload=form.cleaned_data["file"],
            format=form.cleaned_data["format"],
            skip_bad=form.cleaned_data["skip_bad"],
            split=form.cleaned_data["split"],
        )
        return redirect("import_detail", pk=job.pk)
    return render(request, "corpus_import/new.html", {"form": form}, status=400 if form.errors else 200)
