"""The one place that reads the environment: where state lives and which servers to use.

Everything else asks this module. Local default: an embedded PostgreSQL under
$STREAMFLOW_HOME; production: STREAMFLOW_DATABASE_URL / MLFLOW_TRACKING_URI point elsewhere.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

# The folder holding dbt_project/ and feature_repo/. From a checkout (editable install, tests,
# make) that is the checkout itself; an installed package carries copies made when its wheel
# was built, with the dbt manifest already parsed (setup.py), in streamflow_dagster/bundled/.
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
FROM_CHECKOUT = (_PACKAGE_DIR.parent / "dbt_project" / "dbt_project.yml").is_file()
PROJECT_ROOT = _PACKAGE_DIR.parent if FROM_CHECKOUT else _PACKAGE_DIR / "bundled"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"

WAREHOUSE_DB = "streamflow"  # raw, staging, marts, Feast offline/online tables
MLFLOW_DB = "mlflow"  # MLflow tracking and registry: its own database
DEFAULT_UI_URL = "http://127.0.0.1:3000"  # where `dagster dev` serves the UI by default
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `streamflow model ui` serves MLflow's UI


@dataclass(frozen=True)
class Settings:
    home: Path
    landing_dir: Path
    database_url: str | None  # None: use the embedded server
    mlflow_tracking_uri: str | None
    ui_url: str = DEFAULT_UI_URL  # the Dagster UI: alerts and MLflow link to <ui_url>/runs/<id>
    mlflow_ui_url: str = DEFAULT_MLFLOW_UI_URL  # Dagster metadata links to runs and versions
    # Alert sinks besides the ops.alerts table: set means on. The webhook URL and the Slack
    # token are secrets; resources receive them through dg.EnvVar, never these values.
    alert_webhook_url: str | None = None
    slack_token: str | None = None
    slack_channel: str | None = None

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def prediction_spool_dir(self) -> Path:
        """Prediction log rows the API could not write before it stopped (serving.spool)."""
        return self.home / "serving" / "prediction-log-spool"

    @property
    def serve_metrics_dir(self) -> Path:
        """`streamflow serve --workers N`: the workers' Prometheus files (emptied at start)."""
        return self.home / "serving" / "metrics-multiproc"

    @property
    def dbt_docs_dir(self) -> Path:
        return self.home / "dbt-docs"

    @property
    def embedded(self) -> bool:
        return self.database_url is None


def load_settings() -> Settings:
    home = Path(os.environ.get("STREAMFLOW_HOME", ".streamflow")).expanduser().resolve()
    landing = os.environ.get("STREAMFLOW_LANDING_DIR")
    return Settings(
        home=home,
        landing_dir=Path(landing).expanduser().resolve() if landing else home / "landing",
        database_url=os.environ.get("STREAMFLOW_DATABASE_URL") or None,
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
        # STREAMFLOW_UI_URL is the earlier name of STREAMFLOW_DAGSTER_UI_URL, still honoured.
        ui_url=(
            os.environ.get("STREAMFLOW_DAGSTER_UI_URL")
            or os.environ.get("STREAMFLOW_UI_URL")
            or DEFAULT_UI_URL
        ).rstrip("/"),
        mlflow_ui_url=(os.environ.get("STREAMFLOW_MLFLOW_UI_URL") or DEFAULT_MLFLOW_UI_URL).rstrip(
            "/"
        ),
        alert_webhook_url=os.environ.get("STREAMFLOW_ALERT_WEBHOOK_URL") or None,
        slack_token=os.environ.get("STREAMFLOW_SLACK_TOKEN") or None,
        slack_channel=os.environ.get("STREAMFLOW_SLACK_CHANNEL") or None,
    )


# Seconds a PostgreSQL connection attempt may take. libpq reads PGCONNECT_TIMEOUT for every
# connection it opens without its own connect_timeout: ours, dbt's, Feast's, MLflow's and
# Dagster's, in this process and in the step and dbt processes it starts. Without it an
# unreachable host blocks for the kernel's TCP timeout (minutes); with it a step fails well
# within 60 s.
CONNECT_TIMEOUT_S = 10

# MLflow's HTTP client retries a failed call 7 times with a doubling backoff (about four
# minutes, meant for hosted servers' rate limits) and waits 120 s for an answer: a dead
# tracking server took 510 s to fail a step. With these, one call gives up within about 50 s
# (3 attempts of at most 15 s, 1 s + 2 s of backoff).
MLFLOW_CLIENT_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}

# Variables of libraries StreamFlow drives, and the value each gets when the user set none
# (a value the user set wins).
LIBRARY_ENV_DEFAULTS = {
    # Artifacts are local files or a bucket: a progress bar per download only floods run logs.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
    **MLFLOW_CLIENT_BOUNDS,
}


def apply_library_env_defaults() -> None:
    """Give the library variables the user left unset their StreamFlow value, in this process.

    The one process-wide environment write outside the CLI: these libraries read them only
    from the environment (and pass them on to the processes they start). Called where a
    process starts its work: the CLI's entry point, the API, and the resources' setup in
    every Dagster run, sensor and schedule.
    """
    for name, value in LIBRARY_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not FROM_CHECKOUT:
        # An installed package's folder may be read-only (a container image): dbt writes its
        # run artifacts and logs under the state folder instead of the shipped project.
        dbt_dir = load_settings().home / "dbt"
        os.environ.setdefault("DBT_TARGET_PATH", str(dbt_dir / "target"))
        os.environ.setdefault("DBT_LOG_PATH", str(dbt_dir / "logs"))


# -- landing completeness (landing/completeness.py) ------------------------------------------
# A month folder without a manifest is read once its files are this old: long enough for a
# copy that is still writing to have touched a file again, short enough not to delay a run.
DEFAULT_LANDING_SETTLE_SECONDS = 10.0


def landing_settle_seconds() -> float:
    """STREAMFLOW_LANDING_SETTLE_SECONDS; a malformed value is a ValueError naming it."""
    return _number(
        "STREAMFLOW_LANDING_SETTLE_SECONDS",
        DEFAULT_LANDING_SETTLE_SECONDS,
        "a number of seconds, 0 or more",
        lambda v: v >= 0.0,
    )


# -- the monthly partitions (defs/partitions.py) ---------------------------------------------
# The first month the platform knows: months before it are not partitions (the CLI and the
# landing sensor say so, naming this variable). The demo data and the Telco import start here.
DEFAULT_FIRST_MONTH = "2024-01-31"


def first_month() -> str:
    """STREAMFLOW_FIRST_MONTH: the AS_OF of the first partition; a bad value names itself."""
    from ..lib.as_of import validate_as_of

    raw = (os.environ.get("STREAMFLOW_FIRST_MONTH") or "").strip() or DEFAULT_FIRST_MONTH
    try:
        validate_as_of(raw)
    except ValueError as err:
        raise ValueError(f"STREAMFLOW_FIRST_MONTH={raw!r}: {err}") from None
    return raw


# -- the online API (streamflow serve) -------------------------------------------------------
# The model's alias is watched this often: a promotion reaches a running API within it plus
# the load time (about a second), well inside the 30 s the platform promises.
DEFAULT_RELOAD_SECONDS = 10.0
# Each worker holds the models and the feature reader (a few hundred MB): 64 is far past
# any core count this API is meant for; more is a typo.
MAX_SERVE_WORKERS = 64


@dataclass(frozen=True)
class ServeSettings:
    admin_token: str | None  # STREAMFLOW_API_TOKEN: required by every state-changing call
    challenger_alias: str | None  # STREAMFLOW_SERVE_CHALLENGER_ALIAS, e.g. "challenger"
    challenger_share: float  # STREAMFLOW_SERVE_CHALLENGER_SHARE: users on the challenger, 0-1
    reload_seconds: float  # STREAMFLOW_SERVE_RELOAD_SECONDS
    # STREAMFLOW_SERVE_WORKERS: API processes (`streamflow serve --workers`); over 1, metrics
    # are summed over them through Settings.serve_metrics_dir. Not PROMETHEUS_MULTIPROC_DIR
    # alone: importing Feast sets it (to a temp folder of its own) in every process.
    workers: int = 1


def load_serve_settings() -> ServeSettings:
    """The API's settings; a malformed value is a ValueError naming the variable and value."""
    return ServeSettings(
        admin_token=os.environ.get("STREAMFLOW_API_TOKEN") or None,
        challenger_alias=os.environ.get("STREAMFLOW_SERVE_CHALLENGER_ALIAS") or None,
        challenger_share=_number(
            "STREAMFLOW_SERVE_CHALLENGER_SHARE",
            0.0,
            "a share from 0 to 1",
            lambda v: 0.0 <= v <= 1.0,
        ),
        reload_seconds=_number(
            "STREAMFLOW_SERVE_RELOAD_SECONDS",
            DEFAULT_RELOAD_SECONDS,
            "a number of seconds over 0",
            lambda v: v > 0.0,
        ),
        workers=int(
            _number(
                "STREAMFLOW_SERVE_WORKERS",
                1,
                "a whole number of processes from 1 to 64",
                lambda v: v.is_integer() and 1 <= v <= MAX_SERVE_WORKERS,
            )
        ),
    )


def _number(name: str, default: float, wanted: str, valid) -> float:
    raw = os.environ.get(name) or ""
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not valid(value):
        raise ValueError(f"{name}={raw!r}: give {wanted}")
    return value


# -- the executor (definitions.py, platform/celery.py) ---------------------------------------
# in_process: a run's steps one after another in its run worker (the default; no broker).
# celery: each step is a task on Celery workers over a broker (Redis); workers are started by
# `streamflow deploy start` (STREAMFLOW_CELERY_WORKERS of them) or elsewhere, same code.
EXECUTORS = ("in_process", "celery")
DEFAULT_CELERY_WORKERS = 2  # a step each at a time: one per core on this 2-core machine


@dataclass(frozen=True)
class ExecutorSettings:
    executor: str  # STREAMFLOW_EXECUTOR: one of EXECUTORS
    celery_broker_url: str | None  # STREAMFLOW_CELERY_BROKER_URL, e.g. redis://host:6379/0
    celery_backend_url: str | None  # STREAMFLOW_CELERY_BACKEND_URL; default: the broker's URL
    celery_workers: int  # STREAMFLOW_CELERY_WORKERS: local workers `deploy start` starts

    @property
    def celery(self) -> bool:
        return self.executor == "celery"


def load_executor_settings() -> ExecutorSettings:
    """The executor profile; a bad or incomplete one is a ValueError naming the variable."""
    executor = (os.environ.get("STREAMFLOW_EXECUTOR") or "in_process").strip().lower()
    if executor not in EXECUTORS:
        raise ValueError(f"STREAMFLOW_EXECUTOR={executor!r}: give one of {', '.join(EXECUTORS)}")
    broker = (os.environ.get("STREAMFLOW_CELERY_BROKER_URL") or "").strip() or None
    if executor == "celery" and broker is None:
        raise ValueError(
            "STREAMFLOW_EXECUTOR=celery needs STREAMFLOW_CELERY_BROKER_URL, the broker's URL "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    backend = (os.environ.get("STREAMFLOW_CELERY_BACKEND_URL") or "").strip() or broker
    workers = _number(
        "STREAMFLOW_CELERY_WORKERS",
        DEFAULT_CELERY_WORKERS,
        "a whole number of workers, 0 or more",
        lambda v: v >= 0 and v == int(v),
    )
    return ExecutorSettings(executor, broker, backend, int(workers))


# -- the Feast online store (features/online_store.py) ---------------------------------------
POSTGRES_ONLINE_STORE = "postgres"  # Feast's PostgreSQL online tables in the warehouse
REDIS_ONLINE_STORE = "redis"  # Feast's Redis online store, at STREAMFLOW_REDIS_URL
ONLINE_STORES = (POSTGRES_ONLINE_STORE, REDIS_ONLINE_STORE)


@dataclass(frozen=True)
class OnlineStoreSettings:
    kind: str  # STREAMFLOW_ONLINE_STORE: "postgres" (default) or "redis"
    redis_url: str | None = None  # STREAMFLOW_REDIS_URL, e.g. redis://host:6379/0 (redis only)

    @property
    def redis(self) -> bool:
        return self.kind == REDIS_ONLINE_STORE


def online_store_settings() -> OnlineStoreSettings:
    """Which online store Feast and the API use; a bad value is a ValueError naming it."""
    kind = (os.environ.get("STREAMFLOW_ONLINE_STORE") or POSTGRES_ONLINE_STORE).strip().lower()
    if kind not in ONLINE_STORES:
        raise ValueError(
            f"STREAMFLOW_ONLINE_STORE={kind!r}: give one of {', '.join(ONLINE_STORES)}"
        )
    if kind == POSTGRES_ONLINE_STORE:
        return OnlineStoreSettings(kind)
    url = (os.environ.get("STREAMFLOW_REDIS_URL") or "").strip()
    if not url:
        raise ValueError(
            "STREAMFLOW_ONLINE_STORE=redis needs STREAMFLOW_REDIS_URL "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            f"STREAMFLOW_REDIS_URL={url!r}: give redis://[:password@]host[:port][/db] "
            "(rediss:// for TLS)"
        )
    return OnlineStoreSettings(kind, url)
