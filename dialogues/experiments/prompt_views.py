"""The Prompts pages: every prompt set with the runs that used it, one set's templates with their placeholders
highlighted, Copy and edit (a new set, checked as a whole), the side-by-side difference of two sets, and a set's
zip (export) and upload (import). Reading needs the view capability; making a set, the run capability."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dialogues.engine.prompts import (
    ANSWER_SHAPES_HELP,
    BUILTIN_NAME,
    SPECS,
    SYNTAX_HELP,
    InvalidPromptSet,
    PromptSet,
)
from dialogues.experiments.forms import PromptSetEditForm
from dialogues.prompt_sets import services
from dialogues.prompt_sets.models import PromptSet as PromptSetRow
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs.models import Dialogue, Run
from omega_web.roles import Capability, capability_map, requires

UPLOAD_LIMIT = 5_000_000  # bytes of an uploaded zip


def _get(name: str) -> PromptSet:
    try:
        return prompt_set_get(name)
    except PromptSetMissing as exc:
        raise Http404(str(exc)) from exc


def _usage() -> dict[tuple[str, str], dict[str, Any]]:
    """Per (name, version): how many runs used the set, the latest of them, and fork arms that switched to it."""
    used: dict[tuple[str, str], dict[str, Any]] = {}
    rows = Run.objects.values("prompt_set_name", "prompt_set_version").annotate(n=Count("id"), last=Max("id"))
    for row in rows:
        key = (row["prompt_set_name"], row["prompt_set_version"])
        used[key] = {"runs": row["n"], "last": row["last"], "arms": 0}
    for changes in Dialogue.objects.filter(changes__has_key="prompt_set").values_list("changes", flat=True):
        key = (changes["prompt_set"]["name"], changes["prompt_set"]["version"])
        used.setdefault(key, {"runs": 0, "last": None, "arms": 0})["arms"] += 1
    return used


@requires(Capability.VIEW)
def prompt_set_list(request: HttpRequest) -> HttpResponse:
    used = _usage()
    rows = {r.name: r for r in PromptSetRow.objects.select_related("created_by")}
    sets = []
    for prompt_set in services.prompt_sets():
        key = (prompt_set.name, prompt_set.version)
        sets.append({"set": prompt_set, "row": rows.get(prompt_set.name), "used": used.pop(key, None)})
    earlier = [
        {"name": name, "version": version, "used": u}
        for (name, version), u in sorted(used.items())
        if name  # imported runs record no set
    ]
    context = {
        "sets": sets,
        "earlier": earlier,
        "builtin_name": BUILTIN_NAME,
        "can": capability_map(request.user),
        "upload_limit": UPLOAD_LIMIT,
    }
    return render(request, "experiments/prompt_sets.html", context)


@requires(Capability.VIEW)
def prompt_set_detail(request: HttpRequest, name: str) -> HttpResponse:
    prompt_set = _get(name)

    def shown(placeholder: str) -> str:
        return f"${placeholder}" if prompt_set.syntax == "template" else f"{{{placeholder}}}"

    runs = list(
        Run.objects.filter(prompt_set_name=prompt_set.name, prompt_set_version=prompt_set.version).order_by("-id")[:20]
    )
    templates = [
        {
            "key": key,
            "spec": spec,
            "segments": services.segments(prompt_set, key),
            "placeholders": [(shown(p), h, p in spec.required) for p, h in spec.placeholders.items()],
        }
        for key, spec in SPECS.items()
    ]
    context = {
        "set": prompt_set,
        "row": PromptSetRow.objects.filter(name=prompt_set.name).select_related("created_by").first(),
        "templates": templates,
        "syntax_help": SYNTAX_HELP[prompt_set.syntax],
        "answers_help": ANSWER_SHAPES_HELP[prompt_set.answers],
        "runs": runs,
        "others": [s for s in services.prompt_sets() if s.name != prompt_set.name],
        "can": capability_map(request.user),
    }
    return render(request, "experiments/prompt_set.html", context)


@requires(Capability.RUN)
def prompt_set_copy(request: HttpRequest, name: str) -> HttpResponse:
    source = _get(name)
    form = PromptSetEditForm(request.POST or None, source=source)
    problems: list = []
    if request.method == "POST" and form.is_valid():
        try:
            made = services.prompt_set_save(
                name=form.cleaned_data["name"],
                templates=form.templates(),
                syntax=source.syntax,
                answers=source.answers,
                based_on=source,
                note=form.cleaned_data["note"],
                user=request.user,
            )
        except InvalidPromptSet as exc:
            problems = exc.problems
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved the prompt set {made.label}.")
            return redirect("prompt_set_detail", name=made.name)
    by_template: dict[str, list] = {}
    for problem in problems:
        by_template.setdefault(problem.template, []).append(problem)
    fields = [
        {"field": form[f"t_{key}"], "spec": spec, "problems": by_template.get(key, [])} for key, spec in SPECS.items()
    ]
    context = {
        "source": source,
        "form": form,
        "fields": fields,
        "problems": problems,
        "syntax_help": SYNTAX_HELP[source.syntax],
        "prefix": "$" if source.syntax == "template" else "",
    }
    refused = request.method == "POST"
    return render(request, "experiments/prompt_set_edit.html", context, status=400 if refused else 200)


@requires(Capability.VIEW)
def prompt_set_diff(request: HttpRequest) -> HttpResponse:
    names = [s.name for s in services.prompt_sets()]
    a_name = request.GET.get("a") or BUILTIN_NAME
    b_name = request.GET.get("b") or (names[1] if len(names) > 1 else BUILTIN_NAME)
    a, b = _get(a_name), _get(b_name)
    diffs = services.diff_sets(a, b)
    context = {
        "a": a,
        "b": b,
        "names": names,
        "changed": [d for d in diffs if d.changed],
        "same": [d for d in diffs if not d.changed],
        "syntax_differs": a.syntax != b.syntax,
    }
    return render(request, "experiments/prompt_diff.html", context)


@requires(Capability.VIEW)
def prompt_set_export(request: HttpRequest, name: str) -> HttpResponse:
    prompt_set = _get(name)
    response = HttpResponse(services.export_zip(prompt_set), content_type="application/zip")
    filename = "".join(c if c.isalnum() or c in "-_." else "-" for c in prompt_set.name)
    response["Content-Disposition"] = f'attachment; filename="prompts-{filename}-{prompt_set.version}.zip"'
    return response


@requires(Capability.RUN)
@require_POST
def prompt_set_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose the zip of an exported prompt set.")
        return redirect("prompt_set_list")
    if upload.size > UPLOAD_LIMIT:
        messages.error(
            request, f"{upload.name}: {upload.size:,} bytes; at most {UPLOAD_LIMIT:,}. Nothing was imported."
        )
        return redirect("prompt_set_list")
    try:
        made = services.prompt_set_import(
            upload.read(), name=request.POST.get("name", "").strip(), user=request.user, label=upload.name
        )
    except InvalidPromptSet as exc:
        messages.error(request, f"{upload.name}: nothing was imported. " + "; ".join(str(p) for p in exc.problems))
        return redirect("prompt_set_list")
    except ValueError as exc:
        messages.error(request, f"Nothing was imported: {exc}")
        return redirect("prompt_set_list")
    messages.success(request, f"Imported the prompt set {made.label}.")
    return redirect("prompt_set_detail", name=made.name)
