"""Prompt sets (ADR 0027): checked as a whole (template and line), hostile templates refused, export and import byte
for byte, an edited set changing exactly the prompts it edits in a replayed dialogue, and the pages by role."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from dialogues.engine import prompts
from dialogues.engine.prompts import InvalidPromptSet, PromptSet, Syntax, builtin, check_templates
from dialogues.experiments.services import Arm, ForkSettings, dialogue_fork
from dialogues.prompt_sets import services
from dialogues.prompt_sets.models import PromptSet as PromptSetRow
from dialogues.runs.driving import run_coroutine, run_to_end
from dialogues.runs.models import LLMCall, Run
from omega_web.roles import Role
from tests.factories import scenario_tasks, served_run
from tests.support import llm_answers as a
from tests.support.llm_server import ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)


def edited(**changes: str) -> dict[str, str]:
    return {**builtin().templates, **changes}


def problems(templates: dict[str, str], syntax: Syntax = Syntax.TEMPLATE) -> list[str]:
    return [str(p) for p in check_templates(templates, syntax)]


FORMAT_SET = {
    **{k: "" for k in prompts.SPECS},
    "agent": '{name} {context} {history} {strategy_instruction} {{"json": 1}}',
    "rating": "{context}{history}",
    "nsi_prefix": "{context}{history}",
    **{k: "{prefix}" for k in ("nsi_own_utility", "nsi_interests", "nsi_other_utility", "nsi_difference")},
    "nsi_proposal_draft": "{prefix}",
    "nsi_update": "{prefix}",
    "nsi_proposal": "{prefix}{draft}{options}",
    "nsi_confirm": "{prefix}",
    "style_transfer": "{draft}",
    "repair": "{problem}",
    "relevance": "{action}",
    "sotopia_eval": "{history}",
}


# --- checks --------------------------------------------------------------------------------------------------


def test_the_builtin_set_is_valid_and_holds_every_template():
    assert problems(dict(builtin().templates)) == []
    assert set(builtin().templates) == set(prompts.SPECS)
    assert len([t for t in prompts.SPECS if t not in prompts.JUDGE_TEMPLATES | {"repair"}]) == 13


def test_an_unknown_or_missing_placeholder_is_named_with_template_and_line():
    text = builtin().raw("rating").replace("$history", "$histroy")
    line = text[: text.index("$histroy")].count("\n") + 1
    found = problems(edited(rating=text))
    assert f"rating, line {line}: unknown placeholder $histroy" in found[0]
    assert "rating: missing placeholder $history" in found[1]
    assert problems(edited(agent="Hello $name\nand ${nope}"))[0].startswith("agent, line 2: unknown placeholder $nope")
    assert problems(edited(repair="100 $ please $problem"))[0] == (
        "repair, line 1: a $ not followed by a placeholder name (write $$ for $)"
    )


def test_missing_and_unknown_templates_are_refused():
    templates = edited(extra="x")
    del templates["nsi_confirm"]
    found = problems(templates)
    assert any(p.startswith("extra: not a template the engine uses") for p in found)
    assert "nsi_confirm: missing: a set holds every template" in found


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{problem.__class__}", "{problem.__class__}: attribute access is not allowed"),
        ("{problem[0]}", "{problem[0]}: index access is not allowed"),
        ("{problem:>99999}", "{problem:>99999}: format specs are not allowed"),
        ("{problem!r}", "{problem!r}: conversions are not allowed"),
        ("{} {0}", "a placeholder needs a name"),
        ("ok {problem}\n}", "line 2: Single '}' encountered"),
        ("ok {problem}\n\n{", "line 3: Single '{' encountered"),
    ],
)
def test_hostile_format_templates_are_refused(template, message):
    found = problems({**FORMAT_SET, "repair": template}, Syntax.FORMAT)
    assert found and message in found[0] and found[0].startswith("repair")


def test_a_format_set_renders_names_only_and_keeps_doubled_braces():
    templates = dict(FORMAT_SET)
    assert problems(templates, Syntax.FORMAT) == []
    made = PromptSet("f", templates, Syntax.FORMAT)
    shown = made.render("agent", name="{x.__class__}", context="C", history="H", strategy_instruction="", turn=1)
    assert shown == '{x.__class__} C H  {"json": 1}'  # a value is text: nothing in it is looked up


def test_size_limits():
    assert any("characters; at most 100,000" in p for p in problems(edited(repair="$problem" + "x" * 100_001)))
    huge = problems(edited(repair="$problem" + "x" * 10_000_000))
    assert any(p.startswith("(the set): ") for p in huge)


def test_nothing_is_saved_when_one_template_is_invalid(db):
    with pytest.raises(InvalidPromptSet) as refused:
        services.prompt_set_save(
            name="broken", templates=edited(ssi_instruction="fine", rating="$oops"), syntax="template"
        )
    assert [p.template for p in refused.value.problems] == ["rating", "rating", "rating"]
    assert not PromptSetRow.objects.exists()
    with pytest.raises(ValueError, match="nothing changed: these templates are the prompt set built-in"):
        services.prompt_set_save(name="same", templates=edited(), syntax="template")
    with pytest.raises(ValueError, match="the repository's own set"):
        services.prompt_set_save(name="built-in", templates=edited(ssi_instruction="x"), syntax="template")


# --- export and import ---------------------------------------------------------------------------------------


def test_a_set_round_trips_through_export_and_import_byte_for_byte(tmp_path):
    text = "Windows line ends\r\nand ünïcode — kept as they are.\r\n"
    made = services.prompt_set_save(name="crlf", templates=edited(ssi_instruction=text), syntax="template")
    folder = services.export_to(made, tmp_path / "out")
    zipped = services.export_to(made, tmp_path / "out.zip")
    assert (folder / "ssi_instruction.txt").read_bytes() == text.encode()
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    PromptSetRow.objects.all().delete()
    again = services.prompt_set_import(zipped)
    assert again.version == made.version and again.templates == made.templates
    second = services.export_to(services.prompt_set_get("crlf"), tmp_path / "again")
    assert {p.name: p.read_bytes() for p in second.iterdir()} == first
    with zipfile.ZipFile(zipped) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == first


def test_an_import_whose_files_were_changed_or_are_invalid_imports_nothing(tmp_path):
    made = services.prompt_set_save(name="mine", templates=edited(ssi_instruction="A."), syntax="template")
    folder = services.export_to(made, tmp_path / "out")
    PromptSetRow.objects.all().delete()
    (folder / "ssi_instruction.txt").write_text("B.")
    with pytest.raises(ValueError, match=r"manifest.json: version \w+, but the files hash to"):
        services.prompt_set_import(folder)
    (folder / "rating.txt").write_text("$nope")
    manifest = (folder / "manifest.json").read_text().replace(f'"version": "{made.version}",', "")
    (folder / "manifest.json").write_text(manifest)
    with pytest.raises(InvalidPromptSet, match="rating, line 1: unknown placeholder"):
        services.prompt_set_import(folder)
    assert not PromptSetRow.objects.exists()


def test_the_prompts_command(tmp_path):
    out = io.StringIO()
    services.prompt_set_save(name="terse", templates=edited(ssi_instruction="Be terse."), syntax="template")
    call_command("prompts", "list", stdout=out)
    assert re.search(r"built-in\s+\w{12} template\s+0", out.getvalue()) and "terse" in out.getvalue()
    out = io.StringIO()
    call_command("prompts", "diff", "built-in", "terse", stdout=out)
    assert "+++ terse/ssi_instruction.txt" in out.getvalue() and "+Be terse." in out.getvalue()
    assert "rating.txt" not in out.getvalue()
    out = io.StringIO()
    call_command("prompts", "show", "terse", "--template", "ssi_instruction", stdout=out)
    assert out.getvalue() == "Be terse."
    call_command("prompts", "export", "terse", str(tmp_path / "t.zip"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="there is already a prompt set called 'terse'"):
        call_command("prompts", "import", str(tmp_path / "t.zip"))
    with pytest.raises(CommandError, match="nothing changed: these templates are the prompt set terse"):
        call_command("prompts", "import", str(tmp_path / "t.zip"), "--name", "terse-2")
    PromptSetRow.objects.all().delete()
    out = io.StringIO()
    call_command("prompts", "import", str(tmp_path / "t.zip"), stdout=out)
    assert out.getvalue().startswith("Imported the prompt set terse (")
    with pytest.raises(CommandError, match="no prompt set called 'nope'"):
        call_command("prompts", "show", "nope")


# --- an edited set in a replayed dialogue ---------------------------------------------------------------------


def test_an_edited_set_changes_exactly_the_prompts_it_edits_in_a_replayed_dialogue(demo_tasks):
    marker = "\nJudge strictly: this line was added by the edited set.\n"
    edited_set = services.prompt_set_save(
        name="strict judge", templates=edited(rating=builtin().raw("rating") + marker), syntax="template"
    )
    with ScriptedLLMServer() as server:
        # ratings that lead to NSI at turn 6, so the workflow's templates are rendered too
        server.responder = a.responder(lambda turn, n: a.uniform(7, 7, n, end=turn >= 11))
        parent = served_run(server, scenario_tasks("library_roof_fund")[:1], config={"attempts": 1}).dialogues.get()
        fork = dialogue_fork(
            parent_id=parent.pk,
            turn=None,
            arms=[Arm("A", ForkSettings()), Arm("B", ForkSettings(prompt_set=edited_set))],
            seeds=[parent.seed],
            created_by=None,
        )
        run_coroutine(lambda llms: run_to_end(fork.pk, llms))
    arm_a, arm_b = fork.dialogues.order_by("arm")
    assert arm_b.changes["prompt_set"] == {"name": "strict judge", "version": edited_set.version}
    calls_a = list(LLMCall.objects.filter(dialogue=arm_a).order_by("id").values_list("purpose", "messages"))
    calls_b = list(LLMCall.objects.filter(dialogue=arm_b).order_by("id").values_list("purpose", "messages"))
    assert len(calls_a) == len(calls_b) > 20
    assert {p for p, _ in calls_a} >= {"action.native", "rating", "nsi.own_utility", "nsi.style_transfer"}
    for (purpose_a, messages_a), (purpose_b, messages_b) in zip(calls_a, calls_b, strict=True):
        assert purpose_a == purpose_b
        if purpose_a == "rating":
            assert messages_b[0]["content"] == messages_a[0]["content"] + marker
            assert marker not in messages_a[0]["content"]
        else:
            assert messages_b == messages_a  # every other prompt, byte for byte the same
    assert Run.objects.get(pk=fork.pk).prompt_set_name == "built-in"


def test_runs_record_their_set_and_generate_takes_one_by_name(demo_tasks):
    services.prompt_set_save(name="terse", templates=edited(ssi_instruction="Be terse."), syntax="template")
    call_command(
        "generate", "--tasks", "library_roof_fund", "--simulated", "--attempts", "1", "--prompt-set", "terse",
        stdout=io.StringIO(),
    )  # fmt: skip
    run = Run.objects.get()
    assert (run.prompt_set_name, run.prompt_set_version) == ("terse", services.prompt_set_get("terse").version)
    ssi = LLMCall.objects.filter(dialogue__run=run, purpose="action.ssi").first()
    if ssi is not None:
        assert "Be terse." in ssi.messages[0]["content"]
    with pytest.raises(CommandError, match="no prompt set called 'nope'"):
        call_command("generate", "--tasks", "library_roof_fund", "--simulated", "--prompt-set", "nope")


# --- pages ----------------------------------------------------------------------------------------------------


def test_viewers_read_the_sets_but_cannot_make_one(client_for):
    viewer = client_for(Role.VIEWER)
    assert viewer.get(reverse("prompt_set_list")).status_code == 200
    page = viewer.get(reverse("prompt_set_detail", args=["built-in"]))
    assert page.status_code == 200 and b'<mark class="placeholder">$history</mark>' in page.content
    assert b"Copy and edit" not in page.content
    assert viewer.get(reverse("prompt_set_copy", args=["built-in"])).status_code == 403
    assert viewer.post(reverse("prompt_set_copy", args=["built-in"]), {"name": "x"}).status_code == 403
    assert viewer.post(reverse("prompt_set_upload")).status_code == 403
    assert not PromptSetRow.objects.exists()


def _form(source: PromptSet, **changes: str) -> dict[str, str]:
    data = {f"t_{k}": v.replace("\n", "\r\n") for k, v in source.templates.items()}  # as a browser sends it
    data.update({"name": "mine", "note": "tried"})
    data.update(changes)
    return data


def test_copy_and_edit_in_the_browser(client_for):
    researcher = client_for(Role.RESEARCHER)
    url = reverse("prompt_set_copy", args=["built-in"])
    refused = researcher.post(url, _form(builtin(), t_agent="Hi $nme\r\n$name $context $history $strategy_instruction"))
    assert refused.status_code == 400 and not PromptSetRow.objects.exists()
    assert b"agent</a>, line 1: unknown placeholder $nme" in refused.content
    saved = researcher.post(url, _form(builtin(), t_ssi_instruction="Be brief.\r\nAnd kind."))
    assert saved.status_code == 302
    made = services.prompt_set_get("mine")
    changed = [k for k in made.templates if made.templates[k] != builtin().templates[k]]
    assert changed == ["ssi_instruction"] and made.templates["ssi_instruction"] == "Be brief.\nAnd kind."
    diff = researcher.get(reverse("prompt_set_diff") + "?a=built-in&b=mine")
    assert diff.status_code == 200 and b"1 template differ" in diff.content
    zipped = researcher.get(reverse("prompt_set_export", args=["mine"]))
    assert zipped["Content-Type"] == "application/zip"


def test_prompt_text_is_escaped_on_every_page(client_for):
    hostile = "<script>alert(1)</script> $problem"
    services.prompt_set_save(name="<b>x<i>", templates=edited(repair=hostile), syntax="template")
    researcher = client_for(Role.RESEARCHER)
    for url in (
        reverse("prompt_set_list"),
        reverse("prompt_set_detail", args=["<b>x<i>"]),
        reverse("prompt_set_diff") + "?a=built-in&b=%3Cb%3Ex%3Ci%3E",
        reverse("prompt_set_copy", args=["<b>x<i>"]),
    ):
        page = researcher.get(url)
        assert page.status_code == 200, url
        assert b"<script>alert(1)" not in page.content and b"<b>x<i>" not in page.content


def test_a_step_that_fails_unexpectedly_fails_its_dialogue_with_the_reason(demo_tasks):
    """A set saved around the checks (here: straight into the table, without its agent template) cannot be
    rendered: the dialogue fails with the reason, and the run goes on to its end instead of the error escaping."""
    templates = edited()
    del templates["agent"]
    version = prompts.set_version(templates, "template", "omega")
    PromptSetRow.objects.create(name="broken", version=version, syntax="template", answers="omega",
                                templates=templates)  # fmt: skip
    call_command(
        "generate", "--tasks", "library_roof_fund", "--simulated", "--attempts", "1", "--prompt-set", "broken",
        stdout=io.StringIO(),
    )  # fmt: skip
    run = Run.objects.get()
    assert run.status == "finished"
    dialogues = list(run.dialogues.all())
    assert len(dialogues) == 2  # the scenario's two tasks, each failed at its first step
    for dialogue in dialogues:
        assert dialogue.status == "failed"
        assert dialogue.failure_reason == "the step at turn 0 failed unexpectedly: KeyError: 'agent'"
