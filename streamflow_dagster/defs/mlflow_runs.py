"""No MLflow run left RUNNING: what the model assets and the tracking resource do about it.

dagster-mlflow starts one MLflow run per Dagster run when its resource is initialized (for an
in-process run: before the first step). churn_model ends it on every exit it sees; if the
Dagster run stops before churn_model ends it (an earlier step failed), `end_if_left_running`
ends it FAILED at the resource's teardown. A process killed outright cannot end anything: the
next churn_model or production_model ends such runs (`end_orphaned_runs`, ml/run_hygiene.py).
"""

from __future__ import annotations

import dagster as dg


def end_if_left_running(init_context, store, run_id: str) -> None:
    """The job-level MLflow run, ended FAILED if churn_model never ended it (it did not run)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from ..ml.run_hygiene import END_REASON_TAG

    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    try:
        if client.get_run(run_id).info.status != "RUNNING":
            return
        reason = (
            f"Dagster run {init_context.run_id} ended before churn_model finished this MLflow "
            "run (an earlier step failed, or churn_model did not run)"
        )
        client.set_tag(run_id, END_REASON_TAG, reason)
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status="FAILED")
        else:
            client.set_terminated(run_id, status="FAILED")
        init_context.log.warning(f"MLflow run {run_id} ended FAILED: {reason}")
    except Exception as err:  # teardown must not hide the run's own failure
        init_context.log.error(
            f"MLflow run {run_id} could not be ended ({err}); the next churn_model or "
            "production_model ends it FAILED (ml/run_hygiene.py)"
        )


def end_orphaned_runs(context: dg.AssetExecutionContext, client) -> None:
    """MLflow runs left RUNNING by killed processes: ended FAILED, their versions marked."""
    from ..ml.run_hygiene import end_orphaned_runs as end_runs

    instance = context.instance

    def dagster_status(run_id: str) -> str | None:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run is not None else None

    for ended in end_runs(client, dagster_status):
        marked = (
            f"; version(s) {', '.join(ended.versions)} marked unfinished" if ended.versions else ""
        )
        context.log.warning(f"MLflow run {ended.run_id} ended FAILED: {ended.reason}{marked}")
