"""MLflow as a tracking server: `mlflow server` over database `mlflow`, artifacts proxied.

`streamflow mlflow-server` runs this command, and so do the tests and the deployment kit:
backend store = database `mlflow` of the warehouse's PostgreSQL server (the same one the
embedded default uses), `--serve-artifacts` with `--artifacts-destination` (an S3 bucket, or
any store MLflow writes to), and `mlflow-artifacts:/` as the root of new experiments, so
clients (training steps, the API) read and write artifacts only through the server and need
neither a local folder nor the bucket's credentials. Clients point MLFLOW_TRACKING_URI at it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .db import ensure_database, start_warehouse
from .mlflow_store import backend_store_uri, initialize_schema, is_database_uri, redacted
from .settings import MLFLOW_DB, Settings, load_settings

# The root MLflow gives new experiments when it proxies artifacts: clients upload to the
# server, which writes to --artifacts-destination.
PROXIED_ARTIFACT_ROOT = "mlflow-artifacts:/"
# Seconds the bucket check may take (an S3 endpoint on the same network answers in ms).
BUCKET_CHECK_TIMEOUT_S = 10


class MlflowServerError(RuntimeError):
    """The server cannot start as asked; the message says what and what to do."""


@dataclass(frozen=True)
class ServerCommand:
    argv: list[str]
    env: dict[str, str]  # the process environment: carries the backend URI (password) too
    backend: str  # the backend store URI (shown redacted)
    destination: str  # where the proxied artifacts go

    def display(self) -> str:
        return f"{' '.join(self.argv[1:])}  (backend {redacted(self.backend)})"


def server_backend(settings: Settings) -> str:
    """The backend store, made ready: database `mlflow` on the warehouse's server (started
    when embedded), or MLFLOW_TRACKING_URI when that is a database; tables created here,
    once, so the server's workers do not race to create them."""
    if settings.mlflow_tracking_uri and is_database_uri(settings.mlflow_tracking_uri):
        backend = settings.mlflow_tracking_uri
    else:  # unset, or the address of this very server (clients' setting, shared env)
        warehouse = start_warehouse(settings)
        ensure_database(warehouse, MLFLOW_DB)
        backend = backend_store_uri(warehouse)
    initialize_schema(backend)
    return backend


def artifacts_destination(destination: str) -> str:
    """The destination as MLflow takes it: a local path made absolute; s3://bucket/... checked
    to exist (MLFLOW_S3_ENDPOINT_URL and AWS_* as boto3 reads them); other schemes as given."""
    scheme = urlsplit(destination).scheme
    if scheme in ("", "file"):
        path = Path(urlsplit(destination).path if scheme else destination).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve().as_uri()
    if scheme == "s3":
        check_bucket(destination)
    return destination


def check_bucket(destination: str) -> None:
    """Raise MlflowServerError (with what to do) unless the S3 bucket answers."""
    import boto3
    import botocore.config
    import botocore.exceptions
    from mlflow.environment_variables import MLFLOW_S3_ENDPOINT_URL

    bucket = urlsplit(destination).netloc
    endpoint = MLFLOW_S3_ENDPOINT_URL.get()
    if not bucket:
        raise MlflowServerError(f"--artifacts-destination {destination}: no bucket named")
    config = botocore.config.Config(
        connect_timeout=BUCKET_CHECK_TIMEOUT_S,
        read_timeout=BUCKET_CHECK_TIMEOUT_S,
        retries={"max_attempts": 1},
    )
    try:
        boto3.client("s3", endpoint_url=endpoint, config=config).head_bucket(Bucket=bucket)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        where = f"at {endpoint} (MLFLOW_S3_ENDPOINT_URL)" if endpoint else "on AWS S3"
        raise MlflowServerError(
            f"The artifacts bucket {bucket!r} {where} cannot be used: {err}. Create the "
            "bucket, set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or another boto3 "
            "credential source), and MLFLOW_S3_ENDPOINT_URL for an S3-compatible store."
        ) from None


def server_command(
    destination: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 2,
    allowed_hosts: str | None = None,
    settings: Settings | None = None,
) -> ServerCommand:
    """The `mlflow server` process to start, its backend and destination made ready."""
    settings = settings or load_settings()
    backend = server_backend(settings)
    destination = artifacts_destination(destination)
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--serve-artifacts",
        "--artifacts-destination",
        destination,
        "--default-artifact-root",
        PROXIED_ARTIFACT_ROOT,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if allowed_hosts:
        argv += ["--allowed-hosts", allowed_hosts]
    env = dict(os.environ)
    env["MLFLOW_BACKEND_STORE_URI"] = backend  # not in argv: `ps` would show the password
    env.pop("MLFLOW_TRACKING_URI", None)  # the server is the store, not a client of one
    env.pop("MLFLOW_REGISTRY_STORE_URI", None)  # the registry is the same database
    without_job_runner(env)
    return ServerCommand(argv=argv, env=env, backend=backend, destination=destination)


def without_job_runner(env: dict[str, str]) -> dict[str, str]:
    """MLflow's job runner (about eight huey consumer processes per server) serves GenAI
    features StreamFlow does not use (trace rollups, prompt optimisation): off unless the
    user turns it on. For every `mlflow server` / `mlflow ui` StreamFlow starts."""
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env
