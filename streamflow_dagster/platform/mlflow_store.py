"""MLflow as a real service on the embedded default, or the server MLFLOW_TRACKING_URI names.

Embedded default: tracking and model registry in database `mlflow` of the warehouse's
PostgreSQL server (the embedded one, or STREAMFLOW_DATABASE_URL's), artifacts under
$STREAMFLOW_HOME/mlflow-artifacts. `mlflow_ui_command()` prints how to browse that store.

Server mode: MLFLOW_TRACKING_URI names an `mlflow server` (`streamflow mlflow-server`: the
same database `mlflow` as its backend, artifacts proxied to --artifacts-destination, e.g. an
S3 bucket). Clients then create experiments without a location, so the server's proxied root
(mlflow-artifacts:/) holds them, and refuse an experiment whose artifacts are a local path:
each client would write its own folder that no other machine sees.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from .db import ensure_database, start_warehouse, warehouse_url, with_database
from .settings import MLFLOW_DB, Settings, load_settings

# The experiment every month's training run is logged to; the registered model is separate
# (models.registry.REGISTERED_MODEL).
EXPERIMENT_NAME = "streamflow_churn"
# The experiment tag MLflow's UI reads for an experiment's kind (server/js: ExperimentKind,
# "mlflow.experimentKind"); without it MLflow 3 may open ours in its GenAI view (traces).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"
# MLflow creates its tables (an Alembic migration) the first time a client opens an empty
# database; two processes doing it at once collide, so the first opening holds this lock.
_SCHEMA_LOCK_ID = 7_310_101
# SQLAlchemy driver for the store: psycopg 3, the driver the rest of the platform uses.
_SQLALCHEMY_SCHEME = "postgresql+psycopg"
# Stores made ready in this process (tables checked, experiment in place): once is enough.
_prepared: dict[tuple[str, Path | None, str], str] = {}
_prepared_lock = threading.Lock()


class MlflowStoreMisconfigured(RuntimeError):
    """The store cannot be used as configured; the message says what and what to do."""


@dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str  # also the registry URI
    artifact_root: Path | None  # None: the tracking server chooses (MLFLOW_TRACKING_URI)

    @property
    def embedded(self) -> bool:
        return self.artifact_root is not None


def backend_store_uri(database_url: str) -> str:
    """The SQLAlchemy URI of database `mlflow` on the server of `database_url`."""
    return sqlalchemy_uri(with_database(database_url, MLFLOW_DB))


def sqlalchemy_uri(database_url: str) -> str:
    """A libpq URL (postgresql://...) as the SQLAlchemy URI MLflow takes, driver psycopg 3."""
    return urlunsplit(urlsplit(database_url)._replace(scheme=_SQLALCHEMY_SCHEME))


def libpq_url(tracking_uri: str) -> str:
    """A SQLAlchemy postgresql+driver URI as a plain libpq URL (for psycopg)."""
    parts = urlsplit(tracking_uri)
    return urlunsplit(parts._replace(scheme="postgresql"))


def resolve_store(settings: Settings | None = None) -> MlflowStore:
    """The store to use, looked up only: MLFLOW_TRACKING_URI when set, else database `mlflow`
    on the warehouse's server. `start_store()` is the one that makes it ready."""
    settings = settings or load_settings()
    if settings.mlflow_tracking_uri:
        uri = settings.mlflow_tracking_uri
        # A tracking database has no artifact store of its own: without a root, an experiment
        # StreamFlow creates there would keep its files in ./mlruns of whichever process made
        # it (the code server's: the checkout). A server keeps its own (proxied) artifacts.
        root = settings.mlflow_artifacts_dir if is_database_uri(uri) else None
        return MlflowStore(tracking_uri=uri, artifact_root=root)
    return MlflowStore(
        tracking_uri=backend_store_uri(warehouse_url(settings)),
        artifact_root=settings.mlflow_artifacts_dir,
    )


def start_store(settings: Settings | None = None, *, prepare: bool = True) -> MlflowStore:
    """The store, made ready: on the embedded default the warehouse server is started and
    database `mlflow` created; then (`prepare`) its tables and the experiment."""
    settings = settings or load_settings()
    if not settings.mlflow_tracking_uri:
        ensure_database(start_warehouse(settings), MLFLOW_DB)
    store = resolve_store(settings)
    if prepare:
        prepare_store(store)
    return store


def tracking_uri(settings: Settings | None = None) -> str:
    """The MLflow tracking (and registry) URI of this installation."""
    return resolve_store(settings).tracking_uri


def is_database_uri(uri: str) -> bool:
    return urlsplit(uri).scheme.split("+")[0] in {"postgresql", "postgres"}


def is_server_uri(uri: str) -> bool:
    """An MLflow tracking server's address (http or https)."""
    return urlsplit(uri).scheme in {"http", "https"}


def is_local_location(location: str | None) -> bool:
    """An artifact location that is a folder of the machine that reads it (file: or a path)."""
    return not location or urlsplit(location).scheme in {"", "file"}


def initialize_schema(uri: str) -> None:
    """Let MLflow create or check its tables, one process at a time (no-op for a server URI)."""
    if not is_database_uri(uri):
        return
    from mlflow.tracking import MlflowClient

    with psycopg.connect(libpq_url(uri), autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_SCHEMA_LOCK_ID,))
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # the tracking store: creates tables
        client.search_registered_models(max_results=1)  # the registry store: checks them
        conn.execute("select pg_advisory_unlock(%s)", (_SCHEMA_LOCK_ID,))


def ensure_experiment(store: MlflowStore, name: str = EXPERIMENT_NAME) -> str:
    """The experiment's id; created with its artifacts under the store's artifact root, and
    tagged as model training (an experiment made before the tag existed gets it here)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (store.artifact_root / name).as_uri() if store.artifact_root else None
        try:
            return client.create_experiment(
                name,
                artifact_location=location,
                tags={EXPERIMENT_KIND_TAG: CUSTOM_MODEL_DEVELOPMENT},
            )
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created by a parallel run
            if experiment is None:
                raise
    require_shared_location(store, experiment)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != CUSTOM_MODEL_DEVELOPMENT:
        client.set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT
        )
    return experiment.experiment_id


def require_shared_location(store: MlflowStore, experiment) -> None:
    """With a tracking server, refuse an experiment whose artifacts are a local folder.

    MLflow clients write such artifacts themselves, to their own disk: the model a training
    step logs is then missing for the API on another machine. Typical causes: the experiment
    was made by the embedded store (file://$STREAMFLOW_HOME/mlflow-artifacts) before the
    server took over its database, or the server was started without proxied artifacts.
    """
    if not is_server_uri(store.tracking_uri) or not is_local_location(experiment.artifact_location):
        return
    raise MlflowStoreMisconfigured(
        f"MLflow experiment {experiment.name!r} (id {experiment.experiment_id}) keeps its "
        f"artifacts in the local folder {experiment.artifact_location}, but MLFLOW_TRACKING_URI "
        f"is the server {redacted(store.tracking_uri)}: every client would write its own copy. "
        "Start the server with proxied artifacts (`streamflow mlflow-server "
        "--artifacts-destination s3://BUCKET/PATH`, which creates new experiments under "
        "mlflow-artifacts:/), and rename the old experiment (MLflow UI, or "
        "MlflowClient.rename_experiment) so StreamFlow creates a new one through the server."
    )


def prepare_store(store: MlflowStore, experiment: str = EXPERIMENT_NAME) -> str:
    """The store's tables ready and `experiment` in place, once per process; its id."""
    key = (store.tracking_uri, store.artifact_root, experiment)
    with _prepared_lock:
        if key not in _prepared:
            initialize_schema(store.tracking_uri)
            _prepared[key] = ensure_experiment(store, experiment)
        return _prepared[key]


def mlflow_client(store: MlflowStore):  # -> mlflow.tracking.MlflowClient
    """A client bound to `store` (tracking and registry): MLflow's global URIs stay as they are."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


@contextmanager
def fluent_store(
    store: MlflowStore, experiment: str = EXPERIMENT_NAME, restore_to: str | None = None
) -> Iterator[str]:
    """MLflow's fluent API (mlflow.start_run, mlflow.sklearn.log_model) on `store` for the block.

    The fluent API has one process-wide tracking URI; this is the one place that sets it, and
    it puts back `restore_to` (the user's MLFLOW_TRACKING_URI, or None: unset) afterwards, so
    what runs next in the process does not depend on what ran before. Yields the experiment id.
    """
    import mlflow

    experiment_id = prepare_store(store, experiment)
    mlflow.set_tracking_uri(store.tracking_uri)
    try:
        # Fluent runs land in it, never in "Default" (./mlruns in the working directory).
        mlflow.set_experiment(experiment_id=experiment_id)
        yield experiment_id
    finally:
        mlflow.set_tracking_uri(restore_to)


def mlflow_ui_args(settings: Settings | None = None, port: int = 5000) -> list[str] | None:
    """argv of `mlflow ui` on this installation's store; None when MLflow is a server already."""
    store = start_store(settings)
    if not store.embedded:
        return None
    return [
        "mlflow",
        "ui",
        "--backend-store-uri",
        store.tracking_uri,
        "--default-artifact-root",
        store.artifact_root.as_uri(),
        "--port",
        str(port),
    ]


def mlflow_ui_command(settings: Settings | None = None, port: int = 5000) -> str:
    """The `mlflow ui` command line that browses this installation's store (for the README)."""
    args = mlflow_ui_args(settings, port)
    if args is None:
        uri = redacted(resolve_store(settings).tracking_uri)
        return f"MLflow runs at {uri} (MLFLOW_TRACKING_URI): open it in a browser"
    return shlex.join([redacted(arg) for arg in args])


def redacted(uri: str) -> str:
    """`uri` with its password (if any) replaced, for printing."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


if __name__ == "__main__":
    print(mlflow_ui_command())
