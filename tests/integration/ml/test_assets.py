"""churn_model, production_model and churn_scores materialized by Dagster on the real stack:
marts in the embedded PostgreSQL, Feast applied, training_set built by its own asset, MLflow
tracking and registry in PostgreSQL. Three months; the newest one's labels have not landed."""

from __future__ import annotations

import dagster as dg
import mlflow
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from streamflow_dagster.defs.features import FEATURE_ASSETS
from streamflow_dagster.defs.models import (
    MODEL_ASSETS,
)
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.registry import PRODUCTION_ALIAS, alias_version, all_versions
from streamflow_dagster.platform.mlflow_store import EXPERIMENT_NAME
from tests.integration.conftest import create_marts, load_landing_month
from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources

pytestmark = pytest.mark.integration

SELECTION = ["feast_registry", "training_set", "churn_model", "production_model", "churn_scores"]


@pytest.fixture
def stack(database_url, pg_server, tmp_path):
    """Marts of three 2,500-user demo months (the last without labels) and an MLflow store."""
    folder = tmp_path / "landing"
    months = [s.as_of.isoformat() for s in generate_landing(folder, users=2500, months=3, seed=3)]
    with psycopg.connect(database_url) as conn:
        create_marts(conn)
        for month in months:
            load_landing_month(conn, folder / month, month)
        conn.execute("delete from marts.churn_labels where as_of = %s", (months[-1],))
        conn.commit()
    store = fresh_mlflow_store(pg_server.url("postgres"), tmp_path / "artifacts")
    resources = model_asset_resources(database_url, store)
    instance = dg.DagsterInstance.ephemeral()
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    return database_url, months, resources, instance, client


def materialize(stack, month: str, selection=SELECTION) -> dg.ExecuteInProcessResult:
    _, _, resources, instance, _ = stack
    return dg.materialize(
        [*FEATURE_ASSETS, *MODEL_ASSETS],
        selection=selection,
        partition_key=month,
        resources=resources,
        instance=instance,
    )


def metadata(result, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in events[-1].metadata.items()}


def test_three_months_through_the_model_assets(stack):
    url, months, _, _, client = stack
    results = [materialize(stack, month) for month in months]

    # Each labelled month: its own finished MLflow run, a registered version, passing checks.
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["as_of"] for r in runs) == sorted(months)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["dagster_run_id"] for r in runs}) == 3
    assert mlflow.active_run() is None
    for result, month in zip(results[:2], months[:2], strict=True):
        model = metadata(result, "churn_model")
        assert model["as_of"] == month and model["auc"] > 0.7
        assert "![ROC curve](data:image/png;base64," in model["roc"]
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks if c.asset_key.path == ["churn_model"])
    versions = all_versions(client)
    assert sorted(v.tags["as_of"] for v in versions) == months[:2]

    # The month without labels: no model, and the reason, in metadata, checks and MLflow.
    no_model = metadata(results[2], "churn_model")
    assert no_model["model_version"] == "none"
    assert "have not landed" in no_model["reason"]
    model_checks = [
        c for c in results[2].get_asset_check_evaluations() if c.asset_key.path == ["churn_model"]
    ]
    assert {(c.passed, c.severity) for c in model_checks} == {(False, dg.AssetCheckSeverity.WARN)}
    no_model_run = next(r for r in runs if r.data.tags["as_of"] == months[2])
    assert no_model_run.data.tags["outcome"] == "no model"
    assert no_model["mlflow_run_url"].startswith("http")  # its run, linked all the same
    assert f"/runs/{no_model_run.info.run_id}?" in no_model["mlflow_run_url"]

    # Promotion happened once at least; scores cover every user of every month.
    production = alias_version(client, PRODUCTION_ALIAS)
    assert production is not None
    assert metadata(results[2], "production_model")["decision"] == "unchanged"
    with psycopg.connect(url) as conn:
        users = dict(
            conn.execute(
                "select as_of::text, count(*) from marts.subscriptions_profile_snapshots group by 1"
            ).fetchall()
        )
        scores = dict(
            conn.execute(
                "select as_of::text, count(*) from scores.churn_scores group by 1"
            ).fetchall()
        )
        assert scores == users
        newest_versions = conn.execute(
            "select distinct model_version from scores.churn_scores where as_of = %s",
            (months[2],),
        ).fetchall()
    assert newest_versions == [(int(production.version),)]
    scored_by = metadata(results[2], "churn_scores")["model_version_url"]
    assert f"/models/streamflow_churn/versions/{production.version}?" in scored_by

    # Re-materializing a month replaces it and leaves the others as they were.
    again = materialize(stack, months[1], selection=["churn_scores"])
    assert metadata(again, "churn_scores")["dagster/row_count"] == users[months[1]]
    with psycopg.connect(url) as conn:
        rows = dict(
            conn.execute(
                "select as_of::text, count(*) from scores.churn_scores group by 1"
            ).fetchall()
        )
    assert rows == users
