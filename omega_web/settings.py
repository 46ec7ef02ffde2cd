"""Settings, read from the environment (see .env.example for every variable).

Defaults give the embedded mode: SQLite under var/, an in-memory channel layer and a Celery worker inside the
app's own process. OMEGA_DATABASE_URL switches to PostgreSQL, OMEGA_REDIS_URL switches Celery and the channel
layer to Redis, OMEGA_BROKER_URL (beside OMEGA_REDIS_URL) makes RabbitMQ Celery's broker, OMEGA_ENV=production
turns on the deployment hardening that `manage.py check --deploy` expects.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _load_dotenv(path: Path) -> None:
    """Read KEY=VALUE lines from .env without overriding the real environment."""
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


# Test subprocesses set OMEGA_IGNORE_DOTENV so a developer's .env never points them at a real database.
if not os.environ.get("OMEGA_IGNORE_DOTENV"):
    _load_dotenv(BASE_DIR / ".env")


def env(name: str, default: str = "") -> str:
    """The variable's value; unset and empty both mean the default."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = env(name)
    return int(value) if value else default


OMEGA_ENV = env("OMEGA_ENV", "development")
PRODUCTION = OMEGA_ENV == "production"
VAR_DIR = Path(env("OMEGA_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env("OMEGA_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise RuntimeError("OMEGA_SECRET_KEY must be set when OMEGA_ENV=production.")
    # A development key, generated once into var/ (which git ignores), never committed.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64), encoding="utf-8")
        key_file.chmod(0o600)
    return key_file.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("OMEGA_DEBUG", default=False)
ALLOWED_HOSTS = env_list("OMEGA_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("OMEGA_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "omega_web.apps.OmegaAdminConfig",
    "omega_web.apps.OmegaWebConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "axes",
    "dialogues",
    "evaluation",
]

MIDDLEWARE = [
    "omega_web.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "omega_web.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks: answers a refused login (omega_web.login.lockout_response)
]

ROOT_URLCONF = "omega_web.urls"
ASGI_APPLICATION = "omega_web.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "omega_web.roles.role_context",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "omega.sqlite3"
DATABASE_URL = env("OMEGA_DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # A pool per process caps its connections (PostgreSQL allows 100 by default across all processes).
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 0,
            "max_size": env_int("OMEGA_DB_POOL_SIZE", 10),
            "timeout": 60,
        }
        # The statements of a dialogue step run on a server-binding cursor (dialogues/services/runs.py); psycopg
        # prepares a statement the fifth time a connection runs it, so PostgreSQL stops parsing and planning the
        # same few statements. Django turns preparing off by default for poolers that cannot keep prepared
        # statements (PgBouncer in transaction mode before 1.21): OMEGA_DB_PREPARED_STATEMENTS=0 for those.
        # The ORM's own queries bind on the client and are never prepared either way.
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
            5 if env_bool("OMEGA_DB_PREPARED_STATEMENTS", True) else None
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so
                # concurrent read-then-write transactions wait instead of failing with "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- caches ---------------------------------------------------------------------------------------------
# "fragments": rendered turns and chart figures, keyed by a hash of everything they are drawn from (so never
# stale), in each process's memory: a turn is written once and then read by every page and live update of it.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "omega-default"},
    "fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "omega-fragments",
        "TIMEOUT": 3600,
        "OPTIONS": {"MAX_ENTRIES": env_int("OMEGA_FRAGMENT_CACHE_ENTRIES", 5000)},
    },
}

# --- auth -----------------------------------------------------------------------------------------------
# Login attempts (django-axes, omega_web/login.py, ADR 0020): this many failures for one account name, or from one
# address, lock it, whatever the password, until the window has passed since its latest failure.
OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)
OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
OMEGA_LOGIN_WINDOW_SECONDS = env_int("OMEGA_LOGIN_WINDOW_SECONDS", 900)
# The client's address: REMOTE_ADDR, or behind this many trusted proxies that each append to X-Forwarded-For, the
# hop that many from the right. OMEGA_TRUST_X_FORWARDED_FOR=true (the older setting) means one proxy.
OMEGA_TRUSTED_PROXY_COUNT = env_int("OMEGA_TRUSTED_PROXY_COUNT", 1 if env_bool("OMEGA_TRUST_X_FORWARDED_FOR") else 0)
for _name, _least in [
    ("OMEGA_LOGIN_MAX_FAILURES_PER_ACCOUNT", 1),
    ("OMEGA_LOGIN_MAX_FAILURES_PER_ADDRESS", 1),
    ("OMEGA_LOGIN_WINDOW_SECONDS", 1),
    ("OMEGA_TRUSTED_PROXY_COUNT", 0),
]:
    if globals()[_name] < _least:
        raise RuntimeError(f"{_name} must be at least {_least}, not {globals()[_name]}.")
AXES_HANDLER = "omega_web.login.LoginLimitHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # separately: each has its own limit (LoginLimitHandler)
AXES_FAILURE_LIMIT = "omega_web.login.failure_limit"
AXES_COOLOFF_TIME = timedelta(seconds=OMEGA_LOGIN_WINDOW_SECONDS)
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a refused attempt does not extend the lock
AXES_CLIENT_IP_CALLABLE = "omega_web.login.client_address"
AXES_USERNAME_CALLABLE = "omega_web.login.account_name"
AXES_LOCKOUT_CALLABLE = "omega_web.login.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # we limit logins; we do not keep a log of successful ones
AXES_VERBOSE = False  # no start-up banner on every process and command
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked account name or address before the password
    "django.contrib.auth.backends.ModelBackend",
    "omega_web.auth.RoleBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("OMEGA_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- static files ---------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Without collectstatic (embedded mode) WhiteNoise serves straight from the finders.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = VAR_DIR / "media"
# Frozen corpus exports (zip files). In scaled mode every web process must see the same directory.
OMEGA_EXPORT_DIR = Path(env("OMEGA_EXPORT_DIR", str(VAR_DIR / "exports"))).resolve()
# The tokenizer (a tokenizer.json file) an export measures its records with, so a version's page can say which
# cutoff_len they need; unset: records are measured in characters, and the page says so.
OMEGA_CUTOFF_TOKENIZER = env("OMEGA_CUTOFF_TOKENIZER", "")

# Uploads: a hard limit per import (all files together), checked by the form with a clear message.
OMEGA_UPLOAD_MAX_BYTES = env_int("OMEGA_UPLOAD_MAX_MB", 20) * 1024 * 1024
# Corpus files uploaded for import are kept here while a worker reads them (a directory the workers share)
OMEGA_IMPORT_DIR = Path(env("OMEGA_IMPORT_DIR", str(VAR_DIR / "imports"))).resolve()
OMEGA_CORPUS_UPLOAD_MAX_BYTES = env_int("OMEGA_CORPUS_UPLOAD_MAX_MB", 2048) * 1024 * 1024
# A zipped corpus may expand to at most this much (a zip bomb is refused before anything is read).
OMEGA_CORPUS_MAX_UNCOMPRESSED_BYTES = env_int("OMEGA_CORPUS_MAX_UNCOMPRESSED_MB", 51200) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Celery ---------------------------------------------------------------------------------------------
REDIS_URL = env("OMEGA_REDIS_URL")
# Every key this app writes to Redis starts with this prefix, so several installations (or test runs) can share
# one Redis server without seeing each other's queues or channel groups.
REDIS_KEY_PREFIX = env("OMEGA_REDIS_KEY_PREFIX", "omega")
# How long a job may run before it stops itself and is marked failed with the reason (dialogues/common/deadlines.py).
# Workers use the threads pool, where Celery enforces no time limit, so each job checks its own as it goes.
OMEGA_EXPORT_DEADLINE_SECONDS = env_int("OMEGA_EXPORT_DEADLINE_SECONDS", 3600)
OMEGA_EVAL_DEADLINE_SECONDS = env_int("OMEGA_EVAL_DEADLINE_SECONDS", 3600 * 6)
OMEGA_IMPORT_DEADLINE_SECONDS = env_int("OMEGA_IMPORT_DEADLINE_SECONDS", 3600 * 6)
for _name in ("OMEGA_EXPORT_DEADLINE_SECONDS", "OMEGA_EVAL_DEADLINE_SECONDS", "OMEGA_IMPORT_DEADLINE_SECONDS"):
    if globals()[_name] <= 0:
        raise RuntimeError(f"{_name} must be a positive number of seconds, not {globals()[_name]}.")
_LONGEST_JOB = max(OMEGA_EXPORT_DEADLINE_SECONDS, OMEGA_EVAL_DEADLINE_SECONDS, OMEGA_IMPORT_DEADLINE_SECONDS)

# The broker: OMEGA_BROKER_URL (RabbitMQ, amqp://, survives its own restart: ADR 0021) or else Redis at
# OMEGA_REDIS_URL; neither gives the embedded mode's broker inside the serving process. Redis stays the channel
# layer either way, so a RabbitMQ broker needs OMEGA_REDIS_URL too.
BROKER_URL = env("OMEGA_BROKER_URL") or REDIS_URL
_BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "redis", "rediss")
if BROKER_URL:
    _scheme = BROKER_URL.partition("://")[0].lower()
    if "://" not in BROKER_URL or _scheme not in _BROKER_SCHEMES:
        raise RuntimeError(
            f"OMEGA_BROKER_URL must start with one of {', '.join(s + '://' for s in _BROKER_SCHEMES)} "
            f"(e.g. amqp://omega:PASSWORD@rabbitmq.example.org:5672/omega), not {BROKER_URL.split('@')[-1]!r}."
        )
    if not REDIS_URL:
        raise RuntimeError(
            "OMEGA_BROKER_URL needs OMEGA_REDIS_URL as well: Redis carries the live pages' channel layer between the "
            "workers and the web processes."
        )
    CELERY_BROKER_URL = BROKER_URL
    if _scheme.startswith("redis"):
        CELERY_BROKER_TRANSPORT_OPTIONS = {
            # A message a worker took but did not acknowledge goes back on the queue after this long: longer than
            # the longest job may run, or a job still running would be handed to a second worker.
            "visibility_timeout": max(3600, _LONGEST_JOB + 600),
            "socket_timeout": 30,
            "global_keyprefix": f"{REDIS_KEY_PREFIX}:celery:",
        }
    else:
        # RabbitMQ keeps its queues apart by virtual host (the URL's path), not by key prefix. Its consumer_timeout
        # (30 min by default) must exceed the longest deadline: deploy/rabbitmq/rabbitmq.conf.
        CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
        CELERY_BROKER_HEARTBEAT = 30
else:
    # Embedded mode: the broker lives in the serving process; `manage.py serve` runs the worker beside it.
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.01}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that loses the broker keeps trying to reconnect (every few seconds) instead of giving up after 100 tries.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
OMEGA_WORKER_CONCURRENCY = env_int("OMEGA_WORKER_CONCURRENCY", 16)  # threads; each waits on one step
# One queue per kind of work, so a long export or evaluation never holds up dialogue steps (and workers can be
# given the kinds they should run). The task names stay as they were: queued messages and logs name them.
CELERY_TASK_DEFAULT_QUEUE = "llm"
CELERY_TASK_ROUTES = {
    "dialogues.tasks.dialogue_step_task": {"queue": "llm"},
    "dialogues.tasks.dialogue_manual_step_task": {"queue": "llm"},
    "dialogues.tasks.dialogue_human_step_task": {"queue": "llm"},
    "evaluation.tasks.evaluation_job_task": {"queue": "eval"},
    "dialogues.tasks.corpus_version_build_task": {"queue": "export"},
    "dialogues.tasks.import_job_run_task": {"queue": "import"},
}
# What a worker consumes unless told otherwise: `manage.py serve` (embedded mode) and the documented worker command.
OMEGA_WORKER_QUEUES = ["llm", "eval", "export", "import"]
# Runs: how many dialogues of a run step at the same time, and the leases that make a crashed step redone.
# Embedded mode steps in the serving process's worker threads: no more in flight than it has threads.
OMEGA_MAX_DIALOGUES_IN_FLIGHT = env_int(
    "OMEGA_MAX_DIALOGUES_IN_FLIGHT", 256 if BROKER_URL else OMEGA_WORKER_CONCURRENCY
)
# The launcher asks for a confirmation, repeating the estimate, before a run of more tasks or estimated tokens.
OMEGA_LAUNCH_CONFIRM_TASKS = env_int("OMEGA_LAUNCH_CONFIRM_TASKS", 100)
OMEGA_LAUNCH_CONFIRM_TOKENS = env_int("OMEGA_LAUNCH_CONFIRM_TOKENS", 1_000_000)
OMEGA_LEASE_SECONDS = env_int("OMEGA_LEASE_SECONDS", 120)  # a stepping worker must renew within this
OMEGA_LEASE_HEARTBEAT_SECONDS = env_int("OMEGA_LEASE_HEARTBEAT_SECONDS", 30)
OMEGA_QUEUE_LEASE_SECONDS = env_int("OMEGA_QUEUE_LEASE_SECONDS", 600)  # a queued step must start within this
OMEGA_RECONCILE_SECONDS = env_int("OMEGA_RECONCILE_SECONDS", 30)  # how often workers look for stale leases
# Database work of the stepping loop runs in this many threads per process (each holds one connection).
OMEGA_DB_THREADS = env_int(
    "OMEGA_DB_THREADS", 8 if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" else 1
)

# HTTP requests inside Django at the same time, per web process (the rest wait in line; see omega_web/asgi.py).
OMEGA_WEB_CONCURRENCY = env_int("OMEGA_WEB_CONCURRENCY", 4)

# --- Channels -------------------------------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": f"{REDIS_KEY_PREFIX}:channels",
                "capacity": 1000,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "omega_web.channel_layers.LoopSafeInMemoryChannelLayer",
            "CONFIG": {"capacity": 1000},
        }
    }

# --- LLM endpoints (used from the engine issue on) ------------------------------------------------------
OMEGA_LLM_BASE_URLS = env_list("OMEGA_LLM_BASE_URLS")
OMEGA_LLM_MODEL = env("OMEGA_LLM_MODEL")
OMEGA_LLM_API_KEY = env("OMEGA_LLM_API_KEY")
# seconds the server may stay silent while answering (a timeout per read, not per request; connecting: 10 s)
OMEGA_LLM_TIMEOUT = float(env("OMEGA_LLM_TIMEOUT", "600"))
OMEGA_LLM_MAX_IN_FLIGHT = env_int("OMEGA_LLM_MAX_IN_FLIGHT", 256)  # concurrent requests per endpoint, per process
OMEGA_LLM_TRANSPORT_RETRIES = env_int("OMEGA_LLM_TRANSPORT_RETRIES", 5)
# The longest a 429 or 503's Retry-After is honoured before the next try (seconds); a longer one waits this long.
OMEGA_LLM_RETRY_AFTER_MAX = float(env("OMEGA_LLM_RETRY_AFTER_MAX", "60"))
# What each server can do is probed before a run (docs/operations.md, "Serving"); these force a capability instead,
# for a server whose answers to a probe mislead. Empty or "auto": probe it.
# Structured output: auto, off (no JSON schema sent), json_schema, json_object or guided_json.
_structured = env("OMEGA_LLM_STRUCTURED_OUTPUT", "auto").strip().lower()
OMEGA_LLM_STRUCTURED_OUTPUT = {
    "auto": "",
    "true": "",
    "1": "",
    "on": "",
    "yes": "",
    "false": "off",
    "0": "off",
    "no": "off",
}.get(_structured, _structured)
OMEGA_LLM_N = {"auto": ""}.get(
    env("OMEGA_LLM_N").strip().lower(), env("OMEGA_LLM_N").strip().lower()
)  # native, separate
OMEGA_LLM_SEED = env("OMEGA_LLM_SEED", "auto").strip().lower()  # auto, on, off
OMEGA_LLM_CONTEXT_LENGTH = env_int("OMEGA_LLM_CONTEXT_LENGTH", 0)  # tokens; 0: as the server says
# The evaluation judges (S_rel, SOTOPIA-EVAL): another server or model if set, otherwise the expert's.
OMEGA_JUDGE_BASE_URLS = env_list("OMEGA_JUDGE_BASE_URLS")
OMEGA_JUDGE_MODEL = env("OMEGA_JUDGE_MODEL")
# sotopia's own evaluator for SOTOPIA-EVAL (ADR 0025) runs in an environment of its own: its Python. `make sotopia`
# builds it where this default looks (deploy/sotopia/build.sh: OMEGA_SOTOPIA_CACHE, else the user's cache).
_USER_CACHE = Path(env("XDG_CACHE_HOME") or Path.home() / ".cache")
_SOTOPIA_CACHE = Path(env("OMEGA_SOTOPIA_CACHE") or _USER_CACHE / "omega-web" / "sotopia")
OMEGA_SOTOPIA_PYTHON = env("OMEGA_SOTOPIA_PYTHON", str(_SOTOPIA_CACHE / "venv" / "bin" / "python"))
# The simulated expert answers at once; a latency makes demos and tests look like a real server.
OMEGA_SIMULATED_LATENCY_MS = float(env("OMEGA_SIMULATED_LATENCY_MS", "0"))


# --- SOTOPIA data (import at run time; the data is CC-BY-SA and never copied into the repository) ---------
def _sotopia_dir() -> Path:
    """OMEGA_SOTOPIA_DIR, else the shared folder beside the checkout (../shared/data/sotopia), else the
    workplace's shared folder (for clones made elsewhere, e.g. by CI)."""
    if env("OMEGA_SOTOPIA_DIR"):
        return Path(env("OMEGA_SOTOPIA_DIR"))
    candidates = [BASE_DIR.parent / "shared" / "data" / "sotopia", Path("/work/shared/data/sotopia")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


OMEGA_SOTOPIA_DIR = _sotopia_dir()

# --- security -------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP inside the network
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("OMEGA_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("OMEGA_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("OMEGA_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("OMEGA_HSTS_PRELOAD", True)
    if env_bool("OMEGA_BEHIND_TLS_PROXY", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- logging --------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"forbidden_one_line": {"()": "omega_web.logs.ForbiddenOnOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("OMEGA_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"filters": ["forbidden_one_line"]},
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "celery": {"level": env("OMEGA_CELERY_LOG_LEVEL", "INFO")},
        "kombu": {"level": "WARNING"},
    },
}
