"""Experiments in the browser: fork a dialogue from a turn (one fork or a counterfactual batch), play one side
yourself, compare two dialogues side by side, and the Prompts pages: every prompt set with the runs that used it,
one set's templates with their placeholders highlighted, Copy and edit (a new set, checked as a whole), the
side-by-side difference of two sets, and a set's zip (export) and upload (import). Reading needs the view
capability; making a set, the run capability."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dialogues.common.figure_csv import figure_csv_response
from dialogues.engine.prompts import ANSWER_SHAPES_HELP, BUILTIN_NAME, SPECS, SYNTAX_HELP, InvalidPromptSet, PromptSet
from dialogues.experiments.forms import CompareForm, ForkForm, ForkSettingsForm, HumanActionForm, PromptSetEditForm
from dialogues.experiments.selectors import compare
from dialogues.experiments.services import Arm, ForkSettings, batch_seeds, dialogue_fork_start
from dialogues.inspection.selectors import dialogue_state_context, waiting_for_person
from dialogues.llm.backends import Backend, served_problem
from dialogues.prompt_sets import services
from dialogues.prompt_sets.models import PromptSet as PromptSetRow
from dialogues.prompt_sets.services import PromptSetMissing, prompt_set_get
from dialogues.runs import events
from dialogues.runs.models import Dialogue, Run
from dialogues.runs.selectors import dialogue_config, dialogue_get_or_404, dialogue_prompt_set
from dialogues.runs.starting import dialogue_play_start
from omega_web.roles import Capability, capability_map, requires


@requires(Capability.RUN)
def dialogue_fork_view(request: HttpRequest, pk: int) -> HttpResponse:
    parent = dialogue_get_or_404(pk)
    names = (parent.task.agent1.full_name, parent.task.agent2.full_name)
    base = dialogue_config(parent)
    last_turn = parent.turns_count - 1  # -1: no turns yet, a fork can only start over
    asked = request.GET.get("turn", "")
    turn = str(min(int(asked), last_turn)) if asked.lstrip("-").isdigit() else str(last_turn)
    data = request.POST if request.method == "POST" else None
    form = ForkForm(data, names=names, last_turn=last_turn, initial={"turn": turn})
    prompts = dialogue_prompt_set(parent)
    arm_forms = [
        ForkSettingsForm(data, base=base, simulated=parent.run.simulated, prompts=prompts, prefix=p) for p in ("a", "b")
    ]
    if request.method == "POST" and form.is_valid() and all(f.is_valid() for f in arm_forms):
        run = _create(request, parent, form, arm_forms)
        if run is not None:
            if run.dialogues.count() == 1:
                return redirect("dialogue_detail", pk=run.dialogues.get().pk)
            return redirect("run_detail", pk=run.pk)
    context = {
        "parent": parent,
        "form": form,
        "arm_forms": arm_forms,
        "names": names,
        "base": base,
        "base_prompts": prompts,
        "shared_preview": list(parent.turns.filter(index__lte=int(turn)).order_by("-index")[:1])
        if str(turn).lstrip("-").isdigit()
        else [],
    }
    return render(request, "experiments/fork.html", context, status=400 if request.method == "POST" else 200)


def _create(request: HttpRequest, parent: Dialogue, form: ForkForm, arm_forms: list[ForkSettingsForm]) -> Run | None:
    d = form.cleaned_data
    batch = d["mode"] == "batch"
    human_side = int(d["human_side"]) if d.get("human_side") not in (None, "") else None
    arms = []
    for label, arm_form in zip(("A", "B"), arm_forms if batch else arm_forms[:1], strict=False):
        config, model = arm_form.changes()
        settings = ForkSettings(
            seed=None if batch else d["seed"],
            model=model,
            config=config,
            human_side=None if batch else human_side,
            prompt_set=arm_form.prompt_set_change(),
        )
        arms.append(Arm(label if batch else "", settings))
    if batch and arms[0].settings == arms[1].settings:
        form.add_error(None, "Settings A and B are the same: change something in B (or in A) to compare.")
        return None
    for arm in arms:
        if arm.settings.model:
            backend = Backend.of(parent.run)
            problem = served_problem(Backend(backend.kind, arm.settings.model, backend.base_urls))
            if problem:
                form.add_error(None, f"The model {arm.settings.model!r} cannot be used: {problem}")
                return None
    turn = d["turn"] if d["turn"] >= 0 else None
    seeds = batch_seeds(parent, turn, d["batch_seed"] or 0, d["count"]) if batch else [None]
    try:
        run = dialogue_fork_start(
            parent_id=parent.pk,
            turn=turn,
            arms=arms,
            seeds=seeds,
            created_by=request.user,
            start_paused=d["start_paused"],
        )
    except ValueError as exc:
        form.add_error(None, str(exc))
        return None
    events.run_changed(run.pk)
    return run


@requires(Capability.RUN)
@require_POST
def dialogue_play(request: HttpRequest, pk: int) -> HttpResponse:
    """The person's action for the side they play: checked here and again by the engine, then stepped by a worker
    (rated as the method says), after which the expert answers."""
    dialogue = dialogue_get_or_404(pk)
    form = HumanActionForm(request.POST)
    waiting = waiting_for_person(dialogue)
    if waiting is None:
        form.add_error(None, "It is not your turn: the dialogue does not wait for a person now.")
    queued = None
    if form.is_valid():
        action_type, argument = form.cleaned_data["action_type"], form.cleaned_data.get("argument") or ""
        dialogue_play_start(
            dialogue_id=dialogue.pk, action_type=action_type, argument=argument, user_id=request.user.pk
        )
        events.dialogue_changed(dialogue.pk, dialogue.run_id)
        queued = "human"
    if request.htmx:
        context = dialogue_state_context(pk, can=capability_map(request.user))
        context.update(queued=queued, play_form=None if queued else form, oob=True)  # morphed by id (ADR 0026)
        return render(request, "inspection/detail.html#dialogue-state", context, status=200 if queued else 400)
    for error in form.errors.get("__all__", []) + form.errors.get("argument", []):
        messages.error(request, error)
    return redirect("dialogue_detail", pk=pk)


@requires(Capability.VIEW)
def dialogue_compare(request: HttpRequest) -> HttpResponse:
    """Two dialogues side by side; without both named, a form to name them."""
    form = CompareForm(request.GET or None)
    if not form.is_valid():
        return render(request, "experiments/compare.html", {"form": form}, status=400 if request.GET else 200)
    comparison = compare(form.cleaned_data["a"], form.cleaned_data["b"])
    return render(request, "experiments/compare.html", {"c": comparison, "form": form})


@requires(Capability.VIEW)
def dialogue_compare_csv(request: HttpRequest) -> HttpResponse:
    """The comparison chart's numbers, as CSV (the same figure the page draws)."""
    if not request.GET:
        return redirect("dialogue_compare")  # the page that asks which two
    form = CompareForm(request.GET)
    if not form.is_valid():
        return HttpResponse("Name two dialogues: ?a=…&b=…", status=400, content_type="text/plain")
    comparison = compare(form.cleaned_data["a"], form.cleaned_data["b"])
    return figure_csv_response(json.loads(comparison.figure), f"compare-{comparison.a.pk}-{comparison.b.pk}")


# --- prompt sets ----------------------------------------------------------------------------------------------

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
