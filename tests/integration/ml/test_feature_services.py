"""churn_v1 and churn_v2 on the real stack: both trained on a month and compared on one
holdout, the chosen one registered with its service, and serving reading the service of
whichever version holds `production` (marts in the embedded PostgreSQL, Feast applied and
online, MLflow in PostgreSQL, the API under uvicorn)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import mlflow
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from streamflow_dagster.defs.features import FEATURE_ASSETS
from streamflow_dagster.defs.models import MODEL_ASSETS
from streamflow_dagster.features.store import feature_names, feature_store
from streamflow_dagster.features.training_table import load_training_set
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.dataset import LABEL, model_input
from streamflow_dagster.ml.evaluation import evaluate
from streamflow_dagster.ml.month import SERVICES_COMPARED_TAG, train_month
from streamflow_dagster.ml.promotion import MIN_AUC_GAIN
from streamflow_dagster.ml.registry import (
    FEATURE_SERVICE_TAG,
    PRODUCTION_ALIAS,
    alias_version,
    load_holdout,
    load_version,
    set_alias,
)
from streamflow_dagster.ml.training import train
from streamflow_dagster.platform.mlflow_store import fluent_store
from tests.integration.conftest import create_marts, load_landing_month
from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources
from tests.integration.serving.api_support import RunningApi, make_service, wait_for

pytestmark = pytest.mark.integration

SELECTION = ["feast_registry", "online_features", "training_set", "churn_model", "production_model"]
SERVICES = ("churn_v1", "churn_v2")


@pytest.fixture
def month(database_url, pg_server, tmp_path):
    """One labelled 2,000-user demo month through the feature and model assets."""
    folder = tmp_path / "landing"
    (summary,) = generate_landing(folder, users=2000, months=1, seed=5)
    as_of = summary.as_of.isoformat()
    with psycopg.connect(database_url) as conn:
        create_marts(conn)
        load_landing_month(conn, folder / as_of, as_of)
    mlflow_store = fresh_mlflow_store(pg_server.url("postgres"), tmp_path / "artifacts")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*FEATURE_ASSETS, *MODEL_ASSETS],
        selection=SELECTION,
        partition_key=as_of,
        resources=model_asset_resources(database_url, mlflow_store),
        instance=instance,
    )
    assert result.success
    client = MlflowClient(
        tracking_uri=mlflow_store.tracking_uri, registry_uri=mlflow_store.tracking_uri
    )
    return database_url, as_of, result, mlflow_store, client


def test_both_services_are_trained_and_compared_on_one_holdout(month):
    url, as_of, result, _, client = month
    store = feature_store(url)
    features = {service: feature_names(store, service) for service in SERVICES}
    assert features["churn_v2"][:14] == features["churn_v1"] and len(features["churn_v2"]) == 26

    events = result.asset_materializations_for_node("churn_model")
    metadata = {key: value.value for key, value in events[-1].metadata.items()}
    version = alias_version(client, PRODUCTION_ALIAS)  # the month's only version: promoted
    chosen = version.tags[FEATURE_SERVICE_TAG]
    assert metadata["feature_service"] == chosen and chosen in SERVICES
    run = client.get_run(version.run_id).data
    aucs = {service: run.metrics[f"holdout_auc.{service}"] for service in SERVICES}
    assert metadata["feature_services_holdout_auc"] == {s: round(a, 4) for s, a in aucs.items()}
    assert version.tags[SERVICES_COMPARED_TAG] == ", ".join(f"{s} {a:.4f}" for s, a in aucs.items())
    # The promotion rule decided: churn_v2 only with the margin over churn_v1.
    assert (chosen == "churn_v2") == (aucs["churn_v2"] - aucs["churn_v1"] >= MIN_AUC_GAIN)
    assert run.metrics["auc"] == pytest.approx(aucs[chosen])

    # Independently: each service's model, retrained from the stored training set with the
    # same seed, holds out exactly the logged holdout users and scores the logged AUC.
    with psycopg.connect(url) as conn:
        training_set = load_training_set(conn, date.fromisoformat(as_of))
    holdout = load_holdout(client, version)
    assert set(features["churn_v2"]) <= set(holdout.columns)  # any champion can be scored
    for service in SERVICES:
        trained = train(training_set, features[service], seed=42)
        split = trained.split
        assert list(split.holdout_users) == list(holdout["user_id"])
        evaluation = evaluate(
            trained.model, split.X_holdout, split.y_holdout, trained.threshold, 42
        )
        assert evaluation.metrics["auc"] == pytest.approx(aucs[service], abs=1e-12)

    registered = load_version(client, version.version)
    probability = registered.predict_proba(model_input(holdout, features[chosen]))[:, 1]
    assert roc_auc_score(holdout[LABEL], probability) == pytest.approx(aucs[chosen])


def test_serving_reads_the_feature_service_of_the_production_version(month):
    url, as_of, _, mlflow_store, client = month
    store = feature_store(url)
    with psycopg.connect(url) as conn:
        training_set = load_training_set(conn, date.fromisoformat(as_of))
    # One version per service of the month, registered by hand, so both are served in turn.
    versions = {}
    with fluent_store(mlflow_store):
        for service in SERVICES:
            with mlflow.start_run(run_name=f"{service} {as_of}"):
                trained = train_month(
                    client,
                    training_set,
                    as_of=as_of,
                    feature_service=service,
                    dagster_run_id=f"run-{service}",
                    features=feature_names(store, service),
                )
            versions[service] = int(trained.logged.version)
    # Users whose every feature has a value (JSON null and pandas NaN would not compare).
    complete = training_set[
        training_set["total_paid"].notna() & training_set["months_active"].gt(0)
    ]
    users = list(complete["user_id"][:5])
    online = store.get_online_features(
        features=store.get_feature_service("churn_v2"), entity_rows=[{"user_id": u} for u in users]
    ).to_df()

    with RunningApi(make_service(url, mlflow_store.tracking_uri)) as api, api.client() as http:
        for service in SERVICES:
            set_alias(client, PRODUCTION_ALIAS, versions[service])
            wait_for(
                lambda v=versions[service]: (
                    http.get(f"/predict/{users[0]}").json().get("model_version") == v
                ),
                60,
                f"v{versions[service]} ({service}) in production",
            )
            names = feature_names(store, service)
            model = load_version(client, versions[service])
            expected = model.predict_proba(model_input(online, names))[:, 1]
            batch = http.post("/predict", json={"user_ids": users}).json()["predictions"]
            for position, answer in enumerate(batch):
                assert answer["feature_service"] == service
                assert list(answer["features_used"]) == names  # the service's, in its order
                assert answer["features_used"] == online.iloc[position][names].to_dict()
                assert answer["churn_probability"] == round(float(expected[position]), 4)
            # /features keeps returning the seed's 14 whatever the production model reads.
            assert len(http.get(f"/features/{users[0]}").json()["features"]) == 14
