"""Backup and restore as documented: `manage.py backup` while the app runs, `manage.py restore` into a fresh
instance, and everything is back (SQLite here, PostgreSQL in tests/scaled/test_backup_restore.py)."""

from __future__ import annotations

import shutil

import pytest

from .support.processes import app_env, counts, manage, serve

pytestmark = pytest.mark.slow


def test_sqlite_backup_while_serving_and_restore(tmp_path):
    env = app_env(tmp_path / "a", OMEGA_ADMIN_PASSWORD="backup-admin-pw-1")
    for command in (["migrate", "--no-input", "-v", "0"], ["ensure_admin"], ["load_demo", "-v", "0"],
                    ["generate", "--tasks", "all", "--simulated", "-v", "0"]):  # fmt: skip
        assert manage(env, *command).returncode == 0, command
    before = counts(env)
    backup = tmp_path / "backups" / "omega.sqlite3"
    with serve(env):  # an online backup, with the app running
        result = manage(env, "backup", str(backup))
    assert result.returncode == 0 and "Backed up the sqlite database" in result.stdout, result.stderr
    assert manage(env, "backup", str(backup)).returncode != 0  # never overwrites
    fresh = app_env(tmp_path / "b")
    assert manage(fresh, "migrate", "--no-input", "-v", "0").returncode == 0
    refused = manage(fresh, "restore", str(backup))
    assert refused.returncode != 0 and "--yes" in refused.stderr
    restored = manage(fresh, "restore", str(backup), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert counts(fresh) == before and before.split()[2] != "0"
    damaged = tmp_path / "damaged.sqlite3"
    shutil.copyfile(backup, damaged)
    damaged.write_bytes(b"not a database" + damaged.read_bytes()[14:100])
    bad = manage(fresh, "restore", str(damaged), "--yes")
    assert bad.returncode != 0 and "not an omega-web SQLite backup" in bad.stderr
    assert counts(fresh) == before  # a refused restore changes nothing
