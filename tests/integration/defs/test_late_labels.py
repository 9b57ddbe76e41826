"""Labels that land after their month: the labels run evaluates the scores made before them."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.jobs import LABELS_JOB, MONTHLY_JOB, SETUP_JOB
from streamflow_dagster.defs.resources import LandingResource
from streamflow_dagster.landing.completeness import write_manifest
from streamflow_dagster.landing.demo_data import generate_landing
from tests.integration.helpers import table_checksum
from tests.integration.inprocess import run_months, run_setup
from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources

pytestmark = pytest.mark.integration

JANUARY, FEBRUARY = "2024-01-31", "2024-02-29"


def realized(instance: dg.DagsterInstance, month: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("realized_performance"), asset_partitions=[month]
        ),
        limit=1,
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_late_labels_measure_the_scores_made_before_them(tmp_path, database_url, pg_server):
    landing = tmp_path / "landing"
    generate_landing(landing, users=2000, months=2, seed=7)
    held = tmp_path / "labels.csv"
    (landing / FEBRUARY / "labels.csv").rename(held)  # February's labels are late
    write_manifest(landing / FEBRUARY)  # exported without them; they land later
    # A registry of its own: the session's default one holds other tests' models.
    store = fresh_mlflow_store(pg_server.url("postgres"), tmp_path / "artifacts")
    definitions = build_definitions(
        **model_asset_resources(database_url, store), landing=LandingResource(path=str(landing))
    )
    quiet = lambda _: None  # noqa: E731
    with dg.instance_for_test() as instance:
        assert run_setup(definitions, SETUP_JOB, instance).success
        runs = run_months(definitions, MONTHLY_JOB, [JANUARY, FEBRUARY], instance, echo=quiet)
        assert all(r.success for r in runs), [r.failures for r in runs]
        assert realized(instance, FEBRUARY)["labels_landed"] is False
        with psycopg.connect(database_url) as conn:
            scores = table_checksum(conn, "scores", "churn_scores", "as_of = %s", (FEBRUARY,))
        assert scores[0] > 1000  # February scored by January's Production model

        held.rename(landing / FEBRUARY / "labels.csv")
        (labels_run,) = run_months(definitions, LABELS_JOB, [FEBRUARY], instance, echo=quiet)
        assert labels_run.success, labels_run.failures

        after = realized(instance, FEBRUARY)
        assert after["labels_landed"] is True
        assert after["model_as_of"] == JANUARY and after["scored_out_of_time"] is True
        assert 0.6 < after["auc"] <= 1.0
        with psycopg.connect(database_url) as conn:
            # The scores are the ones made before the labels: the labels run does not re-score.
            assert (
                table_checksum(conn, "scores", "churn_scores", "as_of = %s", (FEBRUARY,)) == scores
            )
            (labelled,) = conn.execute(
                "select count(*) from marts.churn_labels where as_of = %s", (FEBRUARY,)
            ).fetchone()
        assert labelled > 1000
