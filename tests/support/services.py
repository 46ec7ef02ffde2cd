"""Finding the real PostgreSQL, Redis and RabbitMQ for scaled-mode tests.

Without them a test is skipped with the reason; with OMEGA_REQUIRE_SERVICES=1 (CI) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import psycopg
import pytest

POSTGRES_URL = os.environ.get("OMEGA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OMEGA_TEST_REDIS_URL", "redis://127.0.0.1:6379")
RABBITMQ_URL = os.environ.get("OMEGA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


def services_required() -> bool:
    return os.environ.get("OMEGA_REQUIRE_SERVICES", "") not in {"", "0", "false", "no"}


def unavailable(reason: str) -> None:
    """Skip, or fail when the services are required."""
    if services_required():
        pytest.fail(f"{reason} (OMEGA_REQUIRE_SERVICES=1, so this fails instead of skipping)")
    pytest.skip(reason)


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2):
            return True
    except OSError:
        return False


def _with_path(url: str, path: str) -> str:
    return urlparse(url)._replace(path=path).geturl()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards. Yields its URL."""
    if not _reachable(POSTGRES_URL):
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    import psycopg

    name = f"omega_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL} refused the connection: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_path(POSTGRES_URL, f"/{name}")
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_database() -> Iterator[tuple[str, str]]:
    """A Redis URL on a database number of its own and a unique key prefix. Cleans only its own keys
    (never FLUSHALL). Yields (url, prefix)."""
    if not _reachable(REDIS_URL):
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    import redis

    db = int(os.environ.get("OMEGA_TEST_REDIS_DB", "13"))
    url = _with_path(REDIS_URL, f"/{db}")
    prefix = f"omega_test_{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {url} does not answer: {exc}")
    try:
        yield url, prefix
    finally:
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
        client.close()


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def scalar(url: str, sql: str):
    return query(url, sql)[0][0]


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """rabbitmqctl on this machine (the test's RabbitMQ is local); raises with its output when it fails."""
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        unavailable("rabbitmqctl is not installed (the tests make a virtual host of their own with it)")
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A virtual host of its own on this machine's RabbitMQ (its queues seen by no one else), deleted afterwards.
    Yields the broker URL for it."""
    if not _reachable(RABBITMQ_URL):
        unavailable(f"RabbitMQ is not reachable at {RABBITMQ_URL}")
    user = urlparse(RABBITMQ_URL).username or "guest"
    vhost = f"omega_test_{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield _with_path(RABBITMQ_URL, f"/{vhost}")
    finally:
        rabbitmqctl("delete_vhost", vhost)
