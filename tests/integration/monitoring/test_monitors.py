"""feature_drift and realized_performance materialized by Dagster on the real stack: marts in
the embedded PostgreSQL (filled without dbt), Feast applied, a real churn model trained, promoted
and scoring in MLflow. Demo months 2024-05-31..2024-07-31; the demo's streaming degradation
starts in July, so July drifts from June and June does not drift from May."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from streamflow_dagster.defs.calibration import CALIBRATION_CHECK
from streamflow_dagster.defs.checks import STOPPED_BY_CHECKS
from streamflow_dagster.defs.features import FEATURE_ASSETS
from streamflow_dagster.defs.models import (
    MODEL_ASSETS,
)
from streamflow_dagster.defs.monitors import (
    DRIFT_VS_PREVIOUS_CHECK,
    DRIFT_VS_PRODUCTION_CHECK,
    MONITOR_ASSETS,
    REALIZED_AUC_CHECK,
)
from streamflow_dagster.defs.partitions import AS_OF_PARTITIONS
from streamflow_dagster.landing.demo_data import SHIFTED_MONTH_INDEX, generate_landing
from streamflow_dagster.platform.db import ensure_database
from tests.integration.conftest import create_marts, insert_rows, load_landing_month
from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources

pytestmark = pytest.mark.integration

MAY, JUNE, JULY = "2024-05-31", "2024-06-30", "2024-07-31"
ASSETS = [*FEATURE_ASSETS, *MODEL_ASSETS, *MONITOR_ASSETS]


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory):
    """Marts of May-July (2,500 demo users; June and July without labels yet), the May model
    trained, promoted to `production` and scoring May. Shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("monitors")
    summaries = generate_landing(tmp / "landing", users=2500, months=7, seed=3)
    assert summaries[SHIFTED_MONTH_INDEX].as_of.isoformat() == JULY
    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_database(pg_server.url("postgres"), name)
    url = pg_server.url(name)
    with psycopg.connect(url) as conn:
        create_marts(conn)
        for month in (MAY, JUNE, JULY):
            load_landing_month(conn, tmp / "landing" / month, month)
        conn.execute("delete from marts.churn_labels where as_of > %s", (MAY,))
        conn.commit()
    store = fresh_mlflow_store(pg_server.url("postgres"), tmp / "artifacts")
    resources = model_asset_resources(url, store)
    instance = dg.DagsterInstance.ephemeral()
    built = {"url": url, "landing": tmp / "landing", "resources": resources, "instance": instance}
    setup = ["feast_registry", "training_set", "churn_model", "production_model", "churn_scores"]
    assert materialize(built, MAY, setup).success
    return built


def materialize(
    stack, month: str, selection: list[str], raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=month,
        resources=stack["resources"],
        instance=stack["instance"],
        raise_on_error=raise_on_error,
    )


def metadata(result, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in events[-1].metadata.items()}


def checks(result) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_drift_flags_the_shifted_month_and_not_a_stable_one(stack, tmp_path):
    # The first month: nothing before it, and the Production model was trained on it.
    first = materialize(stack, MAY, ["feature_drift"])
    assert first.success
    first_meta = metadata(first, "feature_drift")
    assert first_meta["drift_level"] == "no reference month" and "max_psi" not in first_meta
    assert "first landed month" in first_meta["result"]
    assert all(c.passed for c in checks(first).values())

    stable = materialize(stack, JUNE, ["feature_drift"])
    stable_meta = metadata(stable, "feature_drift")
    assert stable_meta["previous_month"] == MAY and stable_meta["production_training_month"] == MAY
    assert stable_meta["features"] == 14
    assert stable_meta["max_psi"] < 0.1 and stable_meta["drift_level"] == "stable"
    assert all(c.passed for c in checks(stable).values())

    shifted = materialize(stack, JULY, ["feature_drift"], raise_on_error=False)
    # ERROR drift stops the month: no materialization, the step fails, the month shows failed.
    assert not shifted.success
    assert not shifted.asset_materializations_for_node("feature_drift")
    (failure,) = shifted.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    meta = {key: value.value for key, value in data.metadata.items()}  # the withheld metadata
    assert meta[STOPPED_BY_CHECKS] == ", ".join(
        f"feature_drift / {name}" for name in (DRIFT_VS_PREVIOUS_CHECK, DRIFT_VS_PRODUCTION_CHECK)
    )
    # What the UI's partitions view colours by: July failed (red), June and May materialized.
    status = get_and_update_asset_status_cache_value(
        stack["instance"], dg.AssetKey("feature_drift"), AS_OF_PARTITIONS
    )
    with partition_loading_context(dynamic_partitions_store=stack["instance"]):
        assert set(
            status.deserialize_failed_partition_subsets(AS_OF_PARTITIONS).get_partition_keys()
        ) == {JULY}
        materialized = status.deserialize_materialized_partition_subsets(
            AS_OF_PARTITIONS
        ).get_partition_keys()
        assert set(materialized) == {MAY, JUNE}
    assert meta["previous_month"] == JUNE
    assert meta["max_psi_vs_previous_month"] > 0.25 and meta["drift_level"] == "major"
    assert "watch_hours_30d" in meta["top_drifted"].splitlines()[2]  # the most drifted row
    assert meta["psi_chart"].startswith("![PSI per feature](data:image/png;base64,")
    evaluations = checks(shifted)
    for name in (DRIFT_VS_PREVIOUS_CHECK, DRIFT_VS_PRODUCTION_CHECK):
        assert not evaluations[name].passed
        assert evaluations[name].severity == dg.AssetCheckSeverity.ERROR
        assert evaluations[name].partition == JULY and evaluations[name].blocking
    previous = evaluations[DRIFT_VS_PREVIOUS_CHECK].metadata
    assert previous["features_over_warn"].value["watch_hours_30d"] > 0.25

    report = Path(meta["report"])
    assert report.name == f"{JULY}.html" and report.parent.name == "drift"
    assert report.parent.parent.name == "reports"
    page = report.read_text()
    assert "Feature drift for 2024-07-31" in page and "watch_hours_30d" in page
    assert page.count("data:image/png;base64,") >= 6  # 2 PSI charts + distributions
    assert_report_over_http(stack, meta, page, tmp_path)
    for result in (first, stable, shifted):
        for event in result.get_asset_materialization_events():
            for key, value in event.materialization.metadata.items():
                assert "file://" not in str(value.value), key


def assert_report_over_http(stack, meta: dict, page: str, tmp_path: Path) -> None:
    """The report link opens MLflow's artifact page of a monitoring run holding the report,
    and a real MLflow server hands that report over HTTP (what the page shows)."""
    from mlflow.tracking import MlflowClient

    from streamflow_dagster.ml.report_links import MONITORING_EXPERIMENT
    from streamflow_dagster.platform.mlflow_store import MlflowStore
    from streamflow_dagster.platform.settings import DEFAULT_MLFLOW_UI_URL
    from tests.integration.mlflow_http import get, mlflow_server

    resource = stack["resources"]["mlflow_store"]
    store = MlflowStore(resource.tracking_uri, Path(resource.artifact_root))
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    (run,) = client.search_runs(
        [experiment.experiment_id], f"tags.as_of = '{JULY}' and tags.report = 'feature_drift'"
    )
    artifact = f"feature_drift/{JULY}.html"
    assert meta["report_url"] == (
        f"{DEFAULT_MLFLOW_UI_URL}/#/experiments/{experiment.experiment_id}/runs/"
        f"{run.info.run_id}/artifacts/{artifact}?workflowType=machine_learning"
    )
    assert run.info.run_id in meta["report_mlflow_run_url"]
    assert run.info.status == "FINISHED" and run.data.tags["dagster_run_url"].startswith("http")
    with mlflow_server(store, tmp_path / "mlflow-server.log") as base:
        status, kind, body = get(f"{base}/get-artifact?path={artifact}&run_uuid={run.info.run_id}")
        assert status == 200 and kind.startswith("text/html") and body == page
        status, kind, ui = get(f"{base}/")  # the UI the link's #/experiments/... route is in
        assert status == 200 and "<html" in ui.lower()


def test_realized_performance_once_labels_land(stack):
    # June scored by the May model, before June's labels exist.
    waiting = materialize(stack, JUNE, ["churn_scores", "realized_performance"])
    assert waiting.success
    waiting_meta = metadata(waiting, "realized_performance")
    assert waiting_meta["labels_landed"] is False
    assert f"labels for {JUNE} have not landed yet" in waiting_meta["result"]
    assert checks(waiting)[REALIZED_AUC_CHECK].passed

    with psycopg.connect(stack["url"]) as conn:
        labels = pd.read_csv(stack["landing"] / JUNE / "labels.csv")  # June's labels land
        labels.insert(1, "as_of", JUNE)
        insert_rows(conn, "churn_labels", labels[["user_id", "as_of", "churn_label"]])
        expected_rows = conn.execute(
            "select count(*) from scores.churn_scores s join marts.churn_labels l "
            "using (user_id, as_of) where s.as_of = %s",
            (JUNE,),
        ).fetchone()[0]
    landed = materialize(stack, JUNE, ["realized_performance"])
    meta = metadata(landed, "realized_performance")
    assert meta["labels_landed"] is True and meta["dagster/row_count"] == expected_rows > 2000
    assert 0.6 < meta["auc"] < 1.0 and 0 < meta["auc_se"] < 0.05
    assert 0.0 < meta["churn_rate"] < 0.2 and meta["lift_top_decile"] > 1.5
    assert meta["model_as_of"] == MAY and meta["scored_out_of_time"] is True
    assert "/#/models/streamflow_churn/versions/" in meta["model_version_url"]
    assert meta["model_mlflow_run_url"].startswith("http://")
    check = checks(landed)[REALIZED_AUC_CHECK]
    margin = check.metadata["margin"].value
    assert margin >= 0.03 and check.metadata["expected_auc"].value > 0.6
    assert 0 < check.metadata["expected_auc_se"].value < 0.1  # the May holdout's 500 users
    assert check.passed == (check.metadata["auc_drop"].value <= margin)
    assert check.severity == dg.AssetCheckSeverity.WARN  # an alert, never blocking

    # May was scored by the model trained on May itself: computed, and said to be optimistic.
    in_sample = metadata(materialize(stack, MAY, ["realized_performance"]), "realized_performance")
    assert in_sample["scored_out_of_time"] is False and "optimistic" in in_sample["result"]
    # ...and kept out of the `auc` series, under a name of its own.
    assert "auc" not in in_sample and 0.6 < in_sample["in_sample_auc"] <= 1.0
    assert in_sample["excluded_from_auc_series"] == f"{MAY}: scored by v1 trained on {MAY}"


def test_status_shows_the_failed_month_and_its_checks(stack):
    """`streamflow status`'s rows, read from this stack's instance, warehouse and registry."""
    from streamflow_dagster.monitoring.health import render_text
    from streamflow_dagster.monitoring.health_sources import month_health, registry_months

    for month in (JUNE, JULY):  # June stable, July drifted (stopped by its blocking checks)
        materialize(stack, month, ["feature_drift"], raise_on_error=False)
    registry = registry_months(stack["resources"]["mlflow_store"].tracking_uri)
    assert registry[MAY][1] is not None and registry[MAY][2]  # decided and in production
    with psycopg.connect(stack["url"]) as conn:
        health = {
            h.as_of: h for h in month_health(stack["instance"], conn, registry, [MAY, JUNE, JULY])
        }
    july, june = health[JULY], health[JUNE]
    drift = [f"feature_drift / {c}" for c in (DRIFT_VS_PREVIOUS_CHECK, DRIFT_VS_PRODUCTION_CHECK)]
    assert july.failed_blocking == drift and not june.failed_blocking
    assert health[MAY].model_version == registry[MAY][0] and health[MAY].production
    lines = render_text(list(health.values()))
    row = next(line for line in lines if line.startswith(JULY))
    assert " major " in row and row.split()[3] == "2"  # AS_OF, landed, rejected, blocking
    assert next(line for line in lines if line.startswith(JUNE)).split()[5] == "stable"
    assert f"! {JULY} blocking check failed: {drift[0]}" in lines


def land_labels(stack, month: str) -> None:
    with psycopg.connect(stack["url"]) as conn:
        labels = pd.read_csv(stack["landing"] / month / "labels.csv")
        labels.insert(1, "as_of", month)
        conn.execute("delete from marts.churn_labels where as_of = %s", (month,))
        insert_rows(conn, "churn_labels", labels[["user_id", "as_of", "churn_label"]])


def test_calibration_warns_on_the_shifted_month(stack):
    # July, the demo's streaming degradation, scored by the May model before its labels.
    land_labels(stack, JULY)
    result = materialize(stack, JULY, ["churn_scores", "realized_performance"])
    assert result.success  # a warning, never a failed run
    meta = metadata(result, "realized_performance")
    with psycopg.connect(stack["url"]) as conn:
        predicted, realized, brier = conn.execute(
            "select avg(s.churn_probability), avg(l.churn_label::int)::float8, "
            "avg(power(s.churn_probability - l.churn_label::int, 2)) "
            "from scores.churn_scores s join marts.churn_labels l using (user_id, as_of) "
            "where s.as_of = %s",
            (JULY,),
        ).fetchone()
    assert meta["predicted_churn_rate"] == pytest.approx(predicted, abs=1e-4)
    assert meta["churn_rate"] == pytest.approx(realized, abs=1e-4)
    assert meta["brier"] == pytest.approx(brier, abs=1e-4)
    assert meta["reliability"].count("\n") == 11  # header, rule, 10 bins
    assert meta["reliability_curve"].startswith("![reliability curve](data:image/png;base64,")
    check = checks(result)[CALIBRATION_CHECK]
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert not check.passed, check.description
    assert check.metadata["rate_gap"].value > check.metadata["margin"].value >= 0.01
    assert "over-predicting" in check.description
    report = Path(meta["calibration_report"])
    assert report.parent.name == "calibration" and report.name == f"{JULY}.html"
    assert report.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert f"Calibration for {JULY}" in report.read_text()

    # June, before the degradation, scored by the same model: calibrated within the margin.
    land_labels(stack, JUNE)
    june = materialize(stack, JUNE, ["churn_scores", "realized_performance"])
    june_check = checks(june)[CALIBRATION_CHECK]
    assert june_check.passed, june_check.description
    assert abs(june_check.metadata["rate_gap"].value) <= june_check.metadata["margin"].value


def test_drift_watches_the_feature_service_of_the_months_model(stack):
    """A Production version trained on churn_v2 has its 26 features watched, the categorical
    ones (contract type, senior, ...) by PSI over their categories."""
    from mlflow.tracking import MlflowClient

    from streamflow_dagster.ml.registry import FEATURE_SERVICE_TAG, PRODUCTION_ALIAS
    from streamflow_dagster.monitoring.drift import categorical_drift

    resource = stack["resources"]["mlflow_store"]
    client = MlflowClient(tracking_uri=resource.tracking_uri, registry_uri=resource.tracking_uri)
    production = client.get_model_version_by_alias("streamflow_churn", PRODUCTION_ALIAS)
    trained_with = production.tags[FEATURE_SERVICE_TAG]
    client.set_model_version_tag(
        production.name, production.version, FEATURE_SERVICE_TAG, "churn_v2"
    )
    try:
        result = materialize(stack, JUNE, ["feature_drift"])
    finally:
        client.set_model_version_tag(
            production.name, production.version, FEATURE_SERVICE_TAG, trained_with
        )
    meta = metadata(result, "feature_drift")
    assert meta["feature_service"] == "churn_v2" and meta["features"] == 26
    page = Path(meta["report"]).read_text()
    for feature in ("contract_type", "user_is_senior", "add_on_count", "watch_hours_30d"):
        assert feature in page
    with psycopg.connect(stack["url"]) as conn:
        contracts = {
            month: pd.Series(
                [
                    r[0]
                    for r in conn.execute(
                        "select contract_type from marts.customer_profile_snapshots "
                        "where as_of = %s",
                        (month,),
                    )
                ]
            )
            for month in (MAY, JUNE)
        }
    by_category = categorical_drift("contract_type", contracts[MAY], contracts[JUNE])
    assert by_category.kind == "categorical" and len(by_category.bins) >= 2
    # The report's row for it: PSI over the categories.
    assert f"<td>contract_type</td><td>categorical</td><td>{by_category.psi:.4f}</td>" in page
