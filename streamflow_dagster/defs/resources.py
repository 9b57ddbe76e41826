"""Every Dagster resource of the code location: the warehouse, the landing folder, Feast,
MLflow (the store and dagster-mlflow's tracking resource) and where alerts go.

`definitions.build_resources()` is the one place that picks their configuration.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import dagster as dg
import psycopg
from pydantic import PrivateAttr

from ..alerts import payload, sinks
from ..alerts import store as alert_store
from ..alerts.model import Alert
from ..features.store import COMPARED_FEATURE_SERVICES, FEATURE_SERVICE, feature_store
from ..platform.db import connect, connection_env, start_warehouse, warehouse_url
from ..platform.mlflow_reach import require_reachable
from ..platform.mlflow_store import (
    EXPERIMENT_NAME,
    MlflowStore,
    fluent_store,
    mlflow_client,
    prepare_store,
    start_store,
)
from ..platform.settings import (
    DEFAULT_MLFLOW_UI_URL,
    DEFAULT_UI_URL,
    FEATURE_REPO_DIR,
    Settings,
    apply_library_env_defaults,
    load_settings,
)
from .mlflow_runs import end_if_left_running


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse database: the embedded PostgreSQL, or the server at `database_url`."""

    database_url: str | None = None  # from dg.EnvVar("STREAMFLOW_DATABASE_URL") when set
    home: str | None = None  # STREAMFLOW_HOME for the embedded server
    _ready_url: str | None = PrivateAttr(default=None)

    def _settings(self) -> Settings:
        base = load_settings()
        return Settings(
            home=Path(self.home) if self.home else base.home,
            landing_dir=base.landing_dir,
            database_url=self.database_url,
            mlflow_tracking_uri=base.mlflow_tracking_uri,
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run, sensor or schedule that uses the warehouse starts it (the embedded server)."""
        apply_library_env_defaults()  # bounded connects here and in the dbt processes
        self._ready_url = start_warehouse(self._settings())

    def url(self) -> str:
        return self._ready_url or warehouse_url(self._settings())

    def connect(self, **kwargs) -> psycopg.Connection:
        """A connection to the warehouse; unreachable: an error naming the server and the fix."""
        return connect(self.url(), **kwargs)

    def libpq_env(self) -> dict[str, str]:
        """Connection env vars read by dbt's profiles.yml and Feast's feature_store.yaml."""
        return connection_env(self.url())


class LandingResource(dg.ConfigurableResource):
    """The landing folder: one sub-folder per month, named by its AS_OF."""

    path: str

    @property
    def folder(self) -> Path:
        return Path(self.path)


class FeastResource(dg.ConfigurableResource):
    """The Feast repository (feature_repo/), bound to the warehouse database at run time."""

    repo_path: str = str(FEATURE_REPO_DIR)
    feature_service: str = FEATURE_SERVICE
    # The services every month trains and compares (the first is the incumbent): the
    # training set holds all their features.
    compared_services: list[str] = list(COMPARED_FEATURE_SERVICES)

    def store(self, database_url: str):  # -> feast.FeatureStore (imported on use)
        return feature_store(database_url, Path(self.repo_path))


class MlflowStoreResource(dg.ConfigurableResource):
    """MLflow tracking and registry: database `mlflow` of the warehouse server by default."""

    tracking_uri: str | None = None  # None: MLFLOW_TRACKING_URI, else the embedded default
    artifact_root: str | None = None  # with tracking_uri: where a new experiment's files go
    # The UIs that metadata links point at (MLflow's) and that MLflow's tags point back at.
    ui_url: str = DEFAULT_MLFLOW_UI_URL
    dagster_ui_url: str = DEFAULT_UI_URL

    _store: MlflowStore | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run that uses MLflow starts its store (the embedded server, database `mlflow`);
        its tables are made by the first client, after the store answered."""
        apply_library_env_defaults()
        self._store = self._configured() or start_store(prepare=False)

    def _configured(self) -> MlflowStore | None:
        if not self.tracking_uri:
            return None
        root = Path(self.artifact_root) if self.artifact_root else None
        return MlflowStore(tracking_uri=self.tracking_uri, artifact_root=root)

    def store(self) -> MlflowStore:
        if self._store is None:  # used outside a run: nothing was set up
            self._store = self._configured() or start_store(prepare=False)
        return self._store

    def client(self, step: str, month: str | None = None):  # -> mlflow.tracking.MlflowClient
        """A client bound to the store, with its tables and the experiment in place.

        A store that does not answer fails `step` at once (MlflowUnreachable, with what to do).
        """
        store = self.store()
        require_reachable(store.tracking_uri, step=step, month=month)
        prepare_store(store)
        return mlflow_client(store)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name` on the store (created, and tagged, on first use)."""
        return prepare_store(self.store(), name)


@dg.resource(
    required_resource_keys={"mlflow_store"},
    config_schema={"experiment_name": dg.Field(str, default_value=EXPERIMENT_NAME)},
    description="dagster-mlflow's tracking resource on StreamFlow's MLflow store.",
)
def mlflow_tracking_resource(init_context: dg.InitResourceContext):
    """dagster-mlflow's `mlflow_tracking`, pointed at the store `mlflow_store` resolves.

    dagster-mlflow starts (or resumes) the MLflow run tagged with this Dagster run's id. Its
    end-of-run hook only exists on jobs we define, so churn_model ends the run itself; a run
    still RUNNING when this resource closes (churn_model did not get to run) is ended FAILED
    here with the reason, on its own store, so it never absorbs another month.
    """
    import mlflow
    from dagster_mlflow import mlflow_tracking

    from ..ml.run_hygiene import process_tags

    store = init_context.resources.mlflow_store.store()
    month = init_context.dagster_run.tags.get("dagster/partition")
    require_reachable(store.tracking_uri, step="churn_model (its MLflow run)", month=month)
    experiment = init_context.resource_config["experiment_name"]
    # The fluent API on this store for the run (the experiment created with its artifacts under
    # the store's root), and back to the user's setting when the run ends.
    with fluent_store(store, experiment, restore_to=load_settings().mlflow_tracking_uri):
        tracking = mlflow_tracking.resource_fn(
            init_context.replace_config({"experiment_name": experiment})
        )
        tracker = next(tracking)
        run_id = mlflow.active_run().info.run_id
        mlflow.set_tags(process_tags())  # lets a later run tell if this process died with it
        try:
            yield tracker
        finally:
            next(tracking, None)  # dagster-mlflow's own teardown
            end_if_left_running(init_context, store, run_id)


def model_resources() -> dict:
    """The resources the model assets need besides `warehouse` and `feast`."""
    settings = load_settings()
    return {
        "mlflow_store": MlflowStoreResource(
            ui_url=settings.mlflow_ui_url, dagster_ui_url=settings.ui_url
        ),
        "mlflow": mlflow_tracking_resource,
    }


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go: always ops.alerts and the Dagster log; a webhook and Slack when set."""

    ui_url: str = DEFAULT_UI_URL  # alerts link to <ui_url>/runs/<run_id>
    webhook_url: str | None = None  # dg.EnvVar("STREAMFLOW_ALERT_WEBHOOK_URL") when set
    slack_token: str | None = None  # dg.EnvVar("STREAMFLOW_SLACK_TOKEN") when set
    slack_channel: str | None = None

    def senders(self) -> dict[str, sinks.Sender]:
        senders: dict[str, sinks.Sender] = {}
        if self.webhook_url:
            senders[sinks.WEBHOOK] = partial(sinks.post_webhook, self.webhook_url)
        if self.slack_token and self.slack_channel:
            from dagster_slack import SlackResource

            client = SlackResource(token=self.slack_token).get_client()
            senders[sinks.SLACK] = partial(sinks.post_slack, client, self.slack_channel)
        return senders

    def publish(
        self, warehouse: WarehouseResource, alerts: list[Alert], log
    ) -> tuple[list[Alert], int, int]:
        """Record new alerts (the table first), log them, then deliver what is queued.

        Returns (new alerts, deliveries sent, deliveries failed); failed ones are retried.
        """
        senders = self.senders()
        with warehouse.connect() as conn:
            new = alert_store.record(conn, alerts, list(senders))
            for alert in new:
                (log.error if alert.severity == "ERROR" else log.warning)(payload.text(alert))
            sent, failed = sinks.deliver(conn, senders, log.warning)
        return new, sent, failed
