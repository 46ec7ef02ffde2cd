"""PostgreSQL backup and restore as documented: `manage.py backup` (pg_dump) from a database in use, `manage.py
restore` (pg_restore) into another database, and the rows are all there."""

from __future__ import annotations

import pytest

from tests.support.processes import app_env, counts, manage
from tests.support.services import postgres_database

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_postgres_backup_and_restore(tmp_path):
    with postgres_database() as source_url, postgres_database() as target_url:
        source = app_env(tmp_path / "a", OMEGA_DATABASE_URL=source_url)
        for command in (["migrate", "--no-input", "-v", "0"], ["load_demo", "-v", "0"],
                        ["generate", "--tasks", "all", "--simulated", "-v", "0"]):  # fmt: skip
            assert manage(source, *command).returncode == 0, command
        before = counts(source)
        backup = tmp_path / "omega.pgdump"
        result = manage(source, "backup", str(backup))
        assert result.returncode == 0 and "postgresql" in result.stdout, result.stderr
        target = app_env(tmp_path / "b", OMEGA_DATABASE_URL=target_url)
        assert manage(target, "migrate", "--no-input", "-v", "0").returncode == 0  # restore over a live schema
        restored = manage(target, "restore", str(backup), "--yes")
        assert restored.returncode == 0, restored.stderr
        assert counts(target) == before and before.split()[3] != "0"
