"""Months in reverse order equal months in AS_OF order: the decision chain on the real stack.

The same marts (three 800-user demo months) in two databases, each with its own MLflow
registry; training_set, churn_model, production_model and churn_scores materialized month by
month, in AS_OF order in one and in reverse in the other. Training sets, scores, each
month's model metrics and decision, and the aliases must come out the same. In reverse,
February's run changes the champion as of March, so March's scores are made again by it.
(Months run at the same time: tests/integration/defs/test_backfill_concurrency.py.)
"""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.defs.features import FEATURE_ASSETS
from streamflow_dagster.defs.models import MODEL_ASSETS
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.db import ensure_database
from tests.integration.conftest import create_marts, load_landing_month
from tests.integration.ml.outcome import model_outcome
from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources

pytestmark = pytest.mark.integration

SELECTION = ["feast_registry", "training_set", "churn_model", "production_model", "churn_scores"]
USERS = 800  # at ~7% churn, every month has the 20 churners per split a model needs


def run(url: str, store, folder, months: list[str]) -> list[dg.ExecuteInProcessResult]:
    with psycopg.connect(url) as conn:
        create_marts(conn)
        for month in sorted(months):
            load_landing_month(conn, folder / month, month)
        conn.commit()
    instance = dg.DagsterInstance.ephemeral()
    results = [
        dg.materialize(
            [*FEATURE_ASSETS, *MODEL_ASSETS],
            selection=SELECTION,
            partition_key=month,
            resources=model_asset_resources(url, store),
            instance=instance,
        )
        for month in months
    ]
    assert all(r.success for r in results)
    return results


def test_months_in_reverse_equal_months_in_order(database_url, pg_server, tmp_path):
    folder = tmp_path / "landing"
    months = [s.as_of.isoformat() for s in generate_landing(folder, users=USERS, months=3, seed=5)]
    server = pg_server.url("postgres")
    in_order = fresh_mlflow_store(server, tmp_path / "mlflow-in-order")
    reverse = fresh_mlflow_store(server, tmp_path / "mlflow-reverse")
    reverse_url = f"{database_url}_r"
    ensure_database(server, reverse_url.rsplit("/", 1)[1])

    run(database_url, in_order, folder, months)
    expected = model_outcome(database_url, in_order, months)
    assert [expected["chain"][m]["checks"] for m in months] == ["passed"] * 3
    assert expected["chain"][months[0]]["action"] == "promote"
    assert expected["chain"][months[0]]["champion"] == "none"
    assert all(rows > 0 for rows, _, _ in expected["scores"].values())

    results = run(reverse_url, reverse, folder, months[::-1])
    assert model_outcome(reverse_url, reverse, months) == expected
    # A run scores its own month and makes again only the scores of later months whose
    # champion it changed (March, first scored alone by its own model).
    for month, result in zip(months[::-1], results, strict=True):
        again = [
            e.event_specific_data.materialization.partition
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
            and e.asset_key == dg.AssetKey("churn_scores")
        ]
        assert again[-1] == month  # the run's own month, last
        assert all(other > month for other in again[:-1]), (month, again)
