"""LoginThrottle moved from the dialogues app to omega_web: a row counted before the move is still there after it
(and after going back), in omega_web's own table. Then the login limits moved to django-axes and omega_web 0002
dropped that table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)  # migrations change the schema: no surrounding transaction

BEFORE = ("dialogues", "0014_dialogue_steps_update_no_index")
AFTER = ("dialogues", "0015_login_throttle_moves_to_omega_web")
MOVED = ("omega_web", "0001_login_throttle")


def migrate(*targets: tuple[str, str | None]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    return executor


def test_a_throttle_row_survives_the_move_and_back():
    executor = migrate(("omega_web", None))  # before the move: unapplies omega_web 0001 and dialogues 0015
    old = executor.loader.project_state([BEFORE]).apps.get_model("dialogues", "LoginThrottle")
    start, until = timezone.now() - timedelta(minutes=2), timezone.now() + timedelta(minutes=5)
    old.objects.create(key="user:vera", failures=5, window_start=start, locked_until=until)
    try:
        executor = migrate(AFTER, MOVED)
        row = executor.loader.project_state([MOVED]).apps.get_model("omega_web", "LoginThrottle").objects.get()
        assert (row.failures, row.window_start, row.locked_until) == (5, start, until)
        tables = connection.introspection.table_names()
        assert "omega_web_loginthrottle" in tables and "dialogues_loginthrottle" not in tables

        executor = migrate(("omega_web", None))  # backwards: the rows go back with the table
        old = executor.loader.project_state([BEFORE]).apps.get_model("dialogues", "LoginThrottle")
        assert old.objects.get(key="user:vera").failures == 5
    finally:
        executor = MigrationExecutor(connection)
        migrate(*executor.loader.graph.leaf_nodes())  # leave the database as the other tests expect it


def test_the_throttle_table_is_gone_once_axes_counts():
    tables = connection.introspection.table_names()
    assert "omega_web_loginthrottle" not in tables and "dialogues_loginthrottle" not in tables
    assert "axes_accessattempt" in tables
