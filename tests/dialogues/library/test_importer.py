"""The SOTOPIA importer: exact counts on the real data, idempotence, and every malformed kind rejected whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from dialogues.library.models import AgentProfile, ImportJob, ImportStatus, Relationship, Scenario, Task
from dialogues.library.services import task_library_import
from dialogues.library.sotopia import ImportRejected

pytestmark = pytest.mark.django_db

KIND_FILES = {
    "agents": "sotopia_agent_profiles.jsonl",
    "scenarios": "sotopia_environment_profiles.jsonl",
    "relationships": "sotopia_relationship_profiles.jsonl",
    "tasks": "sotopia_env_agent_combo_storages.jsonl",
    "hard": "sotopia_hard_subset_derived.json",
}


def library_counts() -> dict[str, int]:
    return {
        "agents": AgentProfile.objects.count(),
        "scenarios": Scenario.objects.count(),
        "relationships": Relationship.objects.count(),
        "tasks": Task.objects.count(),
        "hard": Task.objects.filter(hard=True).count(),
    }


def real_files(sotopia_dir: Path) -> dict[str, tuple[str, bytes]]:
    return {kind: (name, (sotopia_dir / name).read_bytes()) for kind, name in KIND_FILES.items()}


def test_real_data_gives_exact_counts(sotopia_dir, capsys):
    call_command("import_sotopia", sotopia_dir)
    assert library_counts() == {"agents": 40, "scenarios": 90, "relationships": 120, "tasks": 450, "hard": 70}
    assert set(Task.objects.values_list("split", flat=True)) == {"eval"}
    # 14 hard scenarios with 5 tasks each
    hard_codenames = set(Task.objects.filter(hard=True).values_list("scenario__codename", flat=True))
    assert len(hard_codenames) == 14 and "donate_funds" in hard_codenames
    # a pair of agents may have two relationship rows: 120 rows over 118 pairs
    pairs = set(Relationship.objects.values_list("agent1_id", "agent2_id"))
    assert len(pairs) == 118
    assert "Library: 40 agents, 90 scenarios, 120 relationships, 450 tasks, 70 hard." in capsys.readouterr().out


def test_importing_twice_changes_nothing(sotopia_dir):
    call_command("import_sotopia", sotopia_dir, verbosity=0)
    stamps = dict(Task.objects.values_list("external_id", "updated_at"))
    agent_stamps = dict(AgentProfile.objects.values_list("external_id", "updated_at"))
    counts = task_library_import(files=real_files(sotopia_dir), split="eval", source="sotopia")
    assert all(
        c == {"created": 0, "updated": 0, "unchanged": n}
        for c, n in zip(
            [counts[k] for k in ("agents", "scenarios", "relationships", "tasks")],
            [40, 90, 120, 450],
            strict=True,
        )
    )
    assert dict(Task.objects.values_list("external_id", "updated_at")) == stamps
    assert dict(AgentProfile.objects.values_list("external_id", "updated_at")) == agent_stamps
    assert library_counts()["tasks"] == 450


def test_split_option_and_change_is_an_update(sotopia_dir):
    call_command("import_sotopia", sotopia_dir, split="train", verbosity=0)
    assert set(Task.objects.values_list("split", flat=True)) == {"train"}
    counts = task_library_import(files=real_files(sotopia_dir), split="eval", source="sotopia")
    assert counts["tasks"] == {"created": 0, "updated": 450, "unchanged": 0}


def test_fields_are_stored_faithfully(sotopia_dir):
    call_command("import_sotopia", sotopia_dir, verbosity=0)
    first_agent = json.loads((sotopia_dir / KIND_FILES["agents"]).read_text().splitlines()[0])
    agent = AgentProfile.objects.get(external_id=first_agent["agent_id"])
    assert agent.age == first_agent["age"] and agent.secret == first_agent["secret"]
    assert agent.moral_values == [v.strip() for v in first_agent["moral_values"]]
    first_env = json.loads((sotopia_dir / KIND_FILES["scenarios"]).read_text().splitlines()[0])
    scenario = Scenario.objects.get(external_id=first_env["env_id"])
    assert scenario.goals == tuple(first_env["agent_goals"])
    assert scenario.relationship == first_env["relationship"]
    first_combo = json.loads((sotopia_dir / KIND_FILES["tasks"]).read_text().splitlines()[0])
    task = Task.objects.get(external_id=first_combo["combo_id"])
    assert [task.agent1.external_id, task.agent2.external_id] == first_combo["agent_ids"]  # order kept


# --- malformed files: each kind is rejected with file, line and field, and nothing is imported ------------


def _replace_line(data: bytes, line: int, transform) -> bytes:
    lines = data.decode().split("\n")
    lines[line - 1] = transform(lines[line - 1])
    return "\n".join(lines).encode()


def _latin1_on_line(data: bytes, line: int) -> bytes:
    """Re-encode one line as Latin-1 with an accented letter, as an editor with the wrong encoding would."""
    lines = data.split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b"a", "\u00e9".encode("latin-1"), 1)
    return b"\n".join(lines)


def _edit_record(line: int, edit):
    def transform(text: str) -> str:
        record = json.loads(text)
        edit(record)
        return json.dumps(record)

    return lambda data: _replace_line(data, line, transform)


MALFORMED = [
    pytest.param("agents", lambda d: _replace_line(d, 7, lambda t: t[:-5]), 7, "(json)", "invalid JSON", id="bad-json"),
    pytest.param(
        "scenarios",
        lambda d: _latin1_on_line(d, 3),
        3,
        "(encoding)",
        "not valid UTF-8: byte 0xe9",
        id="wrong-encoding",
    ),
    pytest.param(
        "agents",
        _edit_record(12, lambda r: r.pop("first_name")),
        12,
        "first_name",
        "missing field",
        id="missing-field",
    ),
    pytest.param(
        "agents",
        _edit_record(5, lambda r: r.update(age="forty")),
        5,
        "age",
        "expected an integer",
        id="wrong-type-age",
    ),
    pytest.param(
        "scenarios",
        _edit_record(9, lambda r: r.update(relationship=["3"])),
        9,
        "relationship",
        "expected a relationship code",
        id="wrong-type-relationship",
    ),
    pytest.param(
        "tasks",
        _edit_record(20, lambda r: r.update(env_id="01NOSUCHENV0000000000000000")),
        20,
        "env_id",
        "unknown scenario",
        id="unknown-scenario-reference",
    ),
    pytest.param(
        "relationships",
        _edit_record(33, lambda r: r.update(agent2_id="01NOSUCHAGENT")),
        33,
        "agent2_id",
        "unknown agent id",
        id="unknown-agent-reference",
    ),
    pytest.param(
        "scenarios",
        _edit_record(4, lambda r: r.update(agent_goals=r["agent_goals"][:1])),
        4,
        "agent_goals",
        "exactly two non-empty goals, got 1",
        id="scenario-with-one-goal",
    ),
    pytest.param(
        "scenarios",
        _edit_record(6, lambda r: r["agent_goals"].__setitem__(1, "  ")),
        6,
        "agent_goals",
        "exactly two non-empty goals",
        id="scenario-with-empty-goal",
    ),
    pytest.param(
        "agents",
        _edit_record(2, lambda r: r.update(agent_id="")),
        2,
        "agent_id",
        "must not be empty",
        id="empty-id",
    ),
    pytest.param("tasks", lambda d: d + b"[1, 2]\n", 451, "(record)", "expected a JSON object", id="not-an-object"),
]


@pytest.mark.parametrize(("kind", "corrupt", "line", "field", "message"), MALFORMED)
def test_malformed_file_imports_nothing(sotopia_dir, kind, corrupt, line, field, message):
    files = real_files(sotopia_dir)
    name, data = files[kind]
    files[kind] = (name, corrupt(data))
    with pytest.raises(ImportRejected) as rejected:
        task_library_import(files=files, split="eval", source="sotopia")
    problem = rejected.value.problems[0]
    assert (problem.file, problem.field) == (name, field)
    assert message in problem.message
    assert problem.line == line
    assert library_counts() == {"agents": 0, "scenarios": 0, "relationships": 0, "tasks": 0, "hard": 0}


def test_malformed_file_leaves_existing_library_untouched(sotopia_dir):
    call_command("load_demo", verbosity=0)
    before = library_counts()
    files = real_files(sotopia_dir)
    name, data = files["tasks"]
    files["tasks"] = (name, _edit_record(450, lambda r: r.update(agent_ids=r["agent_ids"][:1]))(data))
    with pytest.raises(ImportRejected) as rejected:
        task_library_import(files=files, split="eval", source="sotopia")
    assert (
        str(rejected.value.problems[0])
        == f"{name}, line 450, field 'agent_ids': a task needs exactly two agents, got 1"
    )
    assert library_counts() == before


def test_hard_subset_errors_name_the_line(sotopia_dir):
    files = real_files(sotopia_dir)
    name, data = files["hard"]
    doc = json.loads(data)
    doc["hard_combos"][10]["combo_id"] = "01NOSUCHCOMBO"
    text = json.dumps(doc, indent=1)
    files["hard"] = (name, text.encode())
    with pytest.raises(ImportRejected) as rejected:
        task_library_import(files=files, split="eval", source="sotopia")
    problem = rejected.value.problems[0]
    expected_line = text[: text.index('"01NOSUCHCOMBO"')].count("\n") + 1
    assert (problem.field, problem.line) == ("hard_combos", expected_line)
    assert "unknown task (combo) id '01NOSUCHCOMBO'" in problem.message

    files["hard"] = (name, b'{\n "hard_combos": [\n  {"combo_id": "x"},\n  {"combo_id": }\n ]\n}')
    with pytest.raises(ImportRejected) as rejected:
        task_library_import(files=files, split="eval", source="sotopia")
    assert (rejected.value.problems[0].line, rejected.value.problems[0].field) == (4, "(json)")


def test_duplicate_ids_are_rejected(sotopia_dir):
    files = real_files(sotopia_dir)
    name, data = files["agents"]
    first_line = data.split(b"\n")[0]
    files["agents"] = (name, data.rstrip(b"\n") + b"\n" + first_line + b"\n")
    with pytest.raises(ImportRejected) as rejected:
        task_library_import(files=files, split="eval", source="sotopia")
    problem = rejected.value.problems[0]
    assert (problem.line, problem.field) == (41, "agent_id")
    assert "already on line 1" in problem.message


def test_references_may_point_into_the_library(sotopia_dir):
    """A later import can bring tasks alone when their agents and scenarios are already in the library."""
    files = real_files(sotopia_dir)
    task_library_import(files={k: files[k] for k in ("agents", "scenarios")}, split="eval", source="sotopia")
    counts = task_library_import(files={k: files[k] for k in ("tasks", "hard")}, split="eval", source="sotopia")
    assert counts["tasks"]["created"] == 450
    assert library_counts()["hard"] == 70


def test_cli_reports_problems_and_records_the_failed_job(tmp_path, sotopia_dir):
    for name in KIND_FILES.values():
        (tmp_path / name).write_bytes((sotopia_dir / name).read_bytes())
    bad = tmp_path / KIND_FILES["relationships"]
    bad.write_bytes(_edit_record(2, lambda r: r.update(relationship="7"))(bad.read_bytes()))
    with pytest.raises(CommandError) as failed:
        call_command("import_sotopia", tmp_path)
    assert "sotopia_relationship_profiles.jsonl, line 2, field 'relationship'" in str(failed.value)
    assert "unknown relationship code '7'" in str(failed.value)
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.FAILED and job.origin == "cli"
    assert library_counts()["agents"] == 0


def test_cli_refuses_a_folder_without_profile_files(tmp_path):
    with pytest.raises(CommandError, match="no profile files found"):
        call_command("import_sotopia", tmp_path)


def test_field_errors_and_unknown_references_are_reported_together(sotopia_dir):
    files = real_files(sotopia_dir)
    name, data = files["scenarios"]
    files["scenarios"] = (name, _edit_record(2, lambda r: r.update(codename=5))(data))
    rel_name, rel_data = files["relationships"]
    files["relationships"] = (rel_name, _edit_record(7, lambda r: r.update(agent1_id="01NOBODY"))(rel_data))
    with pytest.raises(ImportRejected) as rejected:
        task_library_import(files=files, split="eval", source="sotopia")
    found = {(p.file, p.line, p.field) for p in rejected.value.problems}
    assert found == {(name, 2, "codename"), (rel_name, 7, "agent1_id")}
