"""The task library's pages: the task list with search and filters, one task (with its context as each side
sees it), one agent; the import jobs (list, one job updating live) and the upload of SOTOPIA profile files."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers

from dialogues.library import selectors, services
from dialogues.library.forms import ImportUploadForm, TaskFilterForm
from dialogues.library.models import AgentProfile, ImportJob, Task
from omega_web.roles import Capability, requires

PAGE_SIZE = 25


@requires(Capability.VIEW)
def task_list(request: HttpRequest) -> HttpResponse:
    form = TaskFilterForm(request.GET or None, choices=selectors.task_filter_choices())
    tasks = selectors.task_list(form.filters())
    page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    template = "library/tasks/list.html"
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#task-results"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # the fragment and the page must not share a cache entry
    return response


@requires(Capability.VIEW)
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        task = selectors.task_get(pk)
    except Task.DoesNotExist as missing:
        raise Http404("No such task.") from missing
    context = {
        "task": task,
        "relationships": selectors.task_relationships(task),
        **_context_tab(task, "agent1"),
    }
    return render(request, "library/tasks/detail.html", context)


@requires(Capability.VIEW)
def task_context(request: HttpRequest, pk: int, viewer: str) -> HttpResponse:
    if viewer not in selectors.VIEWERS:
        raise Http404("Unknown viewer.")
    task = get_object_or_404(Task.objects.select_related("scenario", "agent1", "agent2"), pk=pk)
    return render(request, "library/tasks/detail.html#context-tabs", {"task": task, **_context_tab(task, viewer)})


def _context_tab(task: Task, viewer: str) -> dict:
    side = {"agent1": "0", "agent2": "1"}.get(viewer)
    return {
        "viewers": selectors.VIEWERS,
        "viewer": viewer,
        "context_text": selectors.task_context_text(task, viewer),
        "verbatim": side is not None and bool((task.contexts or {}).get(side)),  # an imported prompt's own words
    }


@requires(Capability.VIEW)
def agent_detail(request: HttpRequest, pk: int) -> HttpResponse:
    agent = get_object_or_404(AgentProfile, pk=pk)
    return render(request, "library/agents/detail.html", {"agent": agent, "tasks": selectors.agent_tasks(agent)})


@requires(Capability.VIEW)
def import_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.import_job_list(), 20).get_page(request.GET.get("page"))
    return render(request, "library/imports/list.html", {"page": page})


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
        if request.htmx:
            return HttpResponse(status=204, headers={"HX-Redirect": reverse("import_detail", args=[job.pk])})
        return redirect("import_detail", pk=job.pk)
    if request.htmx and form.errors:
        # only the messages change: the form stays in the page with the files already chosen (a browser cannot
        # fill a file input again, so a page drawn anew would drop them)
        return render(request, "library/imports/new.html#form-errors", {"form": form, "oob": True}, status=400)
    return render(request, "library/imports/new.html", {"form": form}, status=400 if form.errors else 200)


@requires(Capability.VIEW)
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=pk)
    return render(request, "library/imports/detail.html", {"job": job})
