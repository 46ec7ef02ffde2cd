"""Settings from the environment: production passes `check --deploy`, the dev key stays out of git."""

from __future__ import annotations

import subprocess

import pytest

from .support.processes import ROOT, app_env, manage


def test_production_settings_pass_check_deploy(tmp_path):
    env = app_env(
        tmp_path,
        OMEGA_ENV="production",
        OMEGA_SECRET_KEY="x" * 64 + "-not-a-real-key-but-long-enough",
        OMEGA_ALLOWED_HOSTS="omega.example.org",
    )
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = manage(app_env(tmp_path, OMEGA_ENV="production", OMEGA_ALLOWED_HOSTS="x.org"), "check")
    assert result.returncode != 0 and "OMEGA_SECRET_KEY must be set" in result.stderr


def test_development_key_is_generated_into_var_and_ignored_by_git(tmp_path):
    result = manage(app_env(tmp_path), "check")
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "secret_key"
    assert len(key_file.read_text()) > 50 and oct(key_file.stat().st_mode)[-3:] == "600"
    ignored = subprocess.run(["git", "check-ignore", "-q", "var/secret_key"], cwd=ROOT)
    assert ignored.returncode == 0, "var/ must be ignored by git"


def test_database_and_redis_urls_switch_the_backends(tmp_path):
    code = (
        "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE']); "
        "print(s.CELERY_BROKER_URL); print(s.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    embedded = manage(app_env(tmp_path), "shell", "-v", "0", "-c", code).stdout.split()
    assert embedded == [
        "django.db.backends.sqlite3",
        "memory://localhost/",
        "omega_web.channel_layers.LoopSafeInMemoryChannelLayer",
    ]
    scaled = manage(
        app_env(
            tmp_path,
            OMEGA_DATABASE_URL="postgresql://u@db.example:5432/omega",
            OMEGA_REDIS_URL="redis://cache.example:6379/0",
        ),
        "shell",
        "-v",
        "0",
        "-c",
        code,
    ).stdout.split()
    assert scaled == [
        "django.db.backends.postgresql",
        "redis://cache.example:6379/0",
        "channels_redis.core.RedisChannelLayer",
    ]


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(tmp_path):
    code = (
        "from django.db import connection; c = connection.cursor(); c.execute('PRAGMA journal_mode'); "
        "print(c.fetchone()[0]); print(connection.settings_dict['OPTIONS']['transaction_mode'])"
    )
    result = manage(app_env(tmp_path), "shell", "-v", "0", "-c", code)
    assert result.stdout.split() == ["wal", "IMMEDIATE"], result.stderr


def test_trusted_proxy_count_from_either_setting_and_a_bad_value_refused(tmp_path):
    def read(**extra: str):
        code = "from django.conf import settings as s; print(s.OMEGA_TRUSTED_PROXY_COUNT)"
        return manage(app_env(tmp_path, **extra), "shell", "-v", "0", "-c", code)

    assert read().stdout.split() == ["0"]
    assert read(OMEGA_TRUST_X_FORWARDED_FOR="true").stdout.split() == ["1"]  # the older setting: one proxy
    assert read(OMEGA_TRUST_X_FORWARDED_FOR="true", OMEGA_TRUSTED_PROXY_COUNT="2").stdout.split() == ["2"]
    refused = read(OMEGA_TRUSTED_PROXY_COUNT="-1")
    assert refused.returncode != 0 and "OMEGA_TRUSTED_PROXY_COUNT must be at least 0, not -1" in refused.stderr


def test_a_rabbitmq_broker_beside_redis_for_the_channel_layer(tmp_path):
    code = (
        "from django.conf import settings as s; print(s.CELERY_BROKER_URL); "
        "print(s.CHANNEL_LAYERS['default']['BACKEND']); print(sorted(s.CELERY_BROKER_TRANSPORT_OPTIONS))"
    )
    env = app_env(
        tmp_path,
        OMEGA_BROKER_URL="amqp://omega:secret@rabbit.example:5672/omega",
        OMEGA_REDIS_URL="redis://cache.example:6379/0",
    )
    result = manage(env, "shell", "-v", "0", "-c", code)
    assert result.stdout.splitlines() == [
        "amqp://omega:secret@rabbit.example:5672/omega",
        "channels_redis.core.RedisChannelLayer",
        "['confirm_publish']",
    ], result.stderr


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param(
            {"OMEGA_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"},
            "OMEGA_BROKER_URL needs OMEGA_REDIS_URL as well",
            id="rabbitmq-without-redis",
        ),
        pytest.param(
            {"OMEGA_BROKER_URL": "kafka://broker:9092", "OMEGA_REDIS_URL": "redis://cache.example:6379/0"},
            "OMEGA_BROKER_URL must start with one of amqp://, amqps://",
            id="unknown-scheme",
        ),
        pytest.param(
            {"OMEGA_EXPORT_DEADLINE_SECONDS": "0"},
            "OMEGA_EXPORT_DEADLINE_SECONDS must be a positive number of seconds, not 0",
            id="zero-deadline",
        ),
    ],
)
def test_bad_broker_and_deadline_settings_are_refused_with_the_reason(tmp_path, variables, message):
    result = manage(app_env(tmp_path, **variables), "check")
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_every_task_has_a_queue_of_its_kind_and_workers_consume_them_all():
    from django.conf import settings

    from omega_web.celery import app

    app.loader.import_default_modules()
    ours = {name for name in app.tasks if name.startswith(("dialogues.", "evaluation."))}
    routes = {name: route["queue"] for name, route in settings.CELERY_TASK_ROUTES.items()}
    assert ours == set(routes)
    assert routes["evaluation.tasks.evaluation_job_task"] == "eval"
    assert routes["dialogues.tasks.corpus_version_build_task"] == "export"
    assert routes["dialogues.tasks.import_job_run_task"] == "import"
    assert {routes[n] for n in ours if "step_task" in n} == {"llm"}
    assert sorted(settings.OMEGA_WORKER_QUEUES) == sorted(set(routes.values())) == ["eval", "export", "import", "llm"]
