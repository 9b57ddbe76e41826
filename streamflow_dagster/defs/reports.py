"""A monitor's HTML report, logged to MLflow and linked from the asset's metadata.

For every monitor (drift, realized performance, calibration): call `log_monitor_report` with
the page and merge what it returns into the MaterializeResult's metadata. The link opens the
report in MLflow's UI (which renders HTML artifacts), so it works from the Dagster UI, where a
`file://` link is refused by the browser.
"""

from __future__ import annotations

import dagster as dg

from .resources import MlflowStoreResource


def log_monitor_report(
    context: dg.AssetExecutionContext,
    mlflow_store: MlflowStoreResource,
    *,
    monitor: str,
    as_of: str,
    html: str,
    key: str = "report",
) -> dict[str, dg.MetadataValue]:
    """Log `html` as `<monitor>/<as_of>.html` of a new run in the monitoring experiment.

    Returns `<key>_url` (the report in MLflow's UI) and `<key>_mlflow_run_url` (its run).
    """
    from ..ml.registry import AS_OF_TAG, DAGSTER_RUN_TAG
    from ..ml.report_links import (
        DAGSTER_RUN_URL_TAG,
        MONITORING_EXPERIMENT,
        REPORT_KIND_TAG,
        dagster_run_url,
        log_report,
        mlflow_run_url,
    )

    client = mlflow_store.client(step=monitor, month=as_of)
    experiment_id = mlflow_store.experiment_id(MONITORING_EXPERIMENT)
    run_id = context.run.run_id
    logged = log_report(
        client,
        experiment_id=experiment_id,
        html=html,
        artifact_path=f"{monitor}/{as_of}.html",
        run_name=f"{monitor} {as_of}",
        tags={
            AS_OF_TAG: as_of,
            REPORT_KIND_TAG: monitor,
            DAGSTER_RUN_TAG: run_id,
            DAGSTER_RUN_URL_TAG: dagster_run_url(mlflow_store.dagster_ui_url, run_id),
        },
        mlflow_ui_url=mlflow_store.ui_url,
    )
    context.log.info(f"{monitor} {as_of}: report in MLflow at {logged.url}")
    run_url = mlflow_run_url(mlflow_store.ui_url, experiment_id, logged.run_id)
    return {
        f"{key}_url": dg.MetadataValue.url(logged.url),
        f"{key}_mlflow_run_url": dg.MetadataValue.url(run_url),
    }
