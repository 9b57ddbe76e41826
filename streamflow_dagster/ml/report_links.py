"""Links between Dagster and MLflow, and HTML reports logged where MLflow's UI shows them.

Dagster metadata points at MLflow's UI (runs, versions, artifacts) by http URL; MLflow runs and
versions carry the Dagster run's URL as a tag. A report (drift, performance, calibration) is
logged as an MLflow artifact of a run in the monitoring experiment: MLflow's artifact page
renders HTML, so the report opens from a link in the Dagster UI. A `file://` link does not:
browsers refuse local files from a web page.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mlflow.tracking import MlflowClient

from .registry_names import REGISTERED_MODEL

# The run and version tag holding the Dagster run's URL (beside DAGSTER_RUN_TAG's bare id).
DAGSTER_RUN_URL_TAG = "dagster_run_url"
# MLflow 3's UI opens an experiment in its GenAI view (traces) unless told otherwise: the
# query parameter picks the "Model training" view, whose sidebar also shows the registry.
_ML_VIEW = "workflowType=machine_learning"
# Where the monitors' reports are logged: one run per report (monitor, month, Dagster run).
MONITORING_EXPERIMENT = "streamflow_monitoring"
REPORT_KIND_TAG = "report"


def dagster_run_url(dagster_ui_url: str, run_id: str) -> str:
    return f"{dagster_ui_url.rstrip('/')}/runs/{run_id}"


def dagster_asset_url(dagster_ui_url: str, asset: str, partition: str | None = None) -> str:
    url = f"{dagster_ui_url.rstrip('/')}/assets/{quote(asset)}"
    return f"{url}?partition={quote(partition)}" if partition else url


def _mlflow(ui_url: str, route: str) -> str:
    return f"{ui_url.rstrip('/')}/#/{route}?{_ML_VIEW}"


def mlflow_experiment_url(ui_url: str, experiment_id: str) -> str:
    return _mlflow(ui_url, f"experiments/{experiment_id}/runs")


def mlflow_run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    return _mlflow(ui_url, f"experiments/{experiment_id}/runs/{run_id}")


def mlflow_artifact_url(ui_url: str, experiment_id: str, run_id: str, path: str) -> str:
    """The run's artifact page with `path` selected (HTML and markdown are rendered there)."""
    return _mlflow(ui_url, f"experiments/{experiment_id}/runs/{run_id}/artifacts/{quote(path)}")


def mlflow_version_url(ui_url: str, version: int | str, model: str = REGISTERED_MODEL) -> str:
    return _mlflow(ui_url, f"models/{quote(model)}/versions/{version}")


@dataclass(frozen=True)
class LoggedReport:
    run_id: str
    experiment_id: str
    artifact_path: str
    url: str  # the artifact page in MLflow's UI


def log_report(
    client: MlflowClient,
    *,
    experiment_id: str,
    html: str,
    artifact_path: str,
    run_name: str,
    tags: dict[str, str],
    mlflow_ui_url: str,
) -> LoggedReport:
    """A finished run in `experiment_id` holding the report at `artifact_path` (e.g.
    "drift/2024-07-31.html"), tagged with `tags` (as_of, monitor, Dagster run and its URL)."""
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    status = "FAILED"
    try:
        folder, name = _split(artifact_path)
        with tempfile.TemporaryDirectory(prefix="streamflow-report-") as tmp:
            local = Path(tmp) / name
            local.write_text(html, encoding="utf-8")
            client.log_artifact(run_id, str(local), folder)
        status = "FINISHED"
    finally:  # never left RUNNING, even when the artifact store refuses the file
        client.set_terminated(run_id, status=status)
    url = mlflow_artifact_url(mlflow_ui_url, experiment_id, run_id, artifact_path)
    return LoggedReport(run_id, experiment_id, artifact_path, url)


def _split(artifact_path: str) -> tuple[str | None, str]:
    folder, _, name = artifact_path.rpartition("/")
    if not name:
        raise ValueError(f"artifact path {artifact_path!r} names no file")
    return folder or None, name
