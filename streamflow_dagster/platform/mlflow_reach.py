"""Whether the MLflow store answers, asked first and with a bound, so a dead store fails fast.

Left to itself MLflow retries a dead store for minutes: its HTTP client backs off for about
four minutes per call, and its SQL store retries creating the engine for close to an hour.
A step that needs MLflow calls `require_reachable` first: a connection refused or a store
that does not answer within PROBE_TIMEOUT_S fails the step at once with a message naming
MLflow, the URI (password hidden), the month and the step, and what to do.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

import psycopg

from .mlflow_store import is_database_uri, libpq_url, redacted
from .settings import apply_library_env_defaults

# A store on the same machine or network answers a connection in milliseconds.
PROBE_TIMEOUT_S = 10


class MlflowUnreachable(RuntimeError):
    """The MLflow tracking store did not answer; the message says where and what to do."""


def unreachable_reason(uri: str) -> str | None:
    """Why the store at `uri` cannot be reached, or None when it answers (or has no address)."""
    if is_database_uri(uri):
        try:
            with psycopg.connect(libpq_url(uri), connect_timeout=PROBE_TIMEOUT_S) as conn:
                conn.execute("select 1")
        except psycopg.Error as err:
            return " ".join(str(err).split())[:300]
        return None
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        # Without the credentials (urllib does not take them in the URL; /health needs none).
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
        health = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/health"
        try:
            urllib.request.urlopen(health, timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return None  # it answered (auth, a proxy's 404): reachable
        except (urllib.error.URLError, OSError) as err:
            return str(getattr(err, "reason", err))[:300]
        return None
    return None  # file:, databricks, ...: nothing to probe here


def require_reachable(uri: str, *, step: str, month: str | None = None) -> None:
    """Raise MlflowUnreachable (with what to do) unless the store at `uri` answers."""
    apply_library_env_defaults()  # later calls in this process fail within bounds too
    reason = unreachable_reason(uri)
    if reason is None:
        return
    where = f"month {month}, step {step}" if month else f"step {step}"
    rerun = f"`streamflow run --months {month}..{month}`" if month else "the step"
    raise MlflowUnreachable(
        f"MLflow is unreachable at {redacted(uri)} ({reason}); {where} needs it. Start the "
        "MLflow server or database it names, or fix MLFLOW_TRACKING_URI (unset, StreamFlow "
        f"uses its embedded store in PostgreSQL), then re-run {rerun}."
    )
