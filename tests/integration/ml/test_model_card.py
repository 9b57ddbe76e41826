"""The model card and the Dagster <-> MLflow links, on the real stack: two labelled demo months
through training_set, churn_model and production_model (marts in the embedded PostgreSQL,
Feast applied, MLflow in PostgreSQL). Figures in the card are checked against the marts and
the run's own holdout, computed here independently."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from streamflow_dagster.defs.features import FEATURE_ASSETS
from streamflow_dagster.defs.models import MODEL_ASSETS
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.model_card import CARD_ARTIFACT, PENDING_DECISION
from streamflow_dagster.ml.registry import HOLDOUT_ARTIFACT, REGISTERED_MODEL, all_versions
from streamflow_dagster.platform.mlflow_store import (
    CUSTOM_MODEL_DEVELOPMENT,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_NAME,
)
from streamflow_dagster.platform.settings import DEFAULT_MLFLOW_UI_URL, DEFAULT_UI_URL
from tests.integration.conftest import create_marts, load_landing_month
from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources

pytestmark = pytest.mark.integration

SELECTION = ["feast_registry", "training_set", "churn_model", "production_model"]
SECTIONS = (
    "## Intended use",
    "## Training window",
    "## Data",
    "## Metrics (holdout, 95% interval)",
    "## Metrics per segment (holdout)",
    "## Promotion decision",
    "## Limitations",
)


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory):
    """Two labelled 2,500-user demo months, each materialized through production_model."""
    import uuid

    from streamflow_dagster.platform.db import ensure_database

    tmp = tmp_path_factory.mktemp("card")
    months = [s.as_of.isoformat() for s in generate_landing(tmp / "l", users=2500, months=2)]
    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_database(pg_server.url("postgres"), name)
    url = pg_server.url(name)
    with psycopg.connect(url) as conn:
        create_marts(conn)
        for month in months:
            load_landing_month(conn, tmp / "l" / month, month)
        conn.commit()
    store = fresh_mlflow_store(pg_server.url("postgres"), tmp / "artifacts")
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
    assert all(result.success for result in results)
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    versions = {v.tags["as_of"]: v for v in all_versions(client)}
    return {"url": url, "months": months, "results": results, "client": client, "v": versions}


def metadata(result, asset: str) -> dict:
    events = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in events[-1].metadata.items()}


def test_the_description_is_the_card_with_the_months_real_figures(stack, tmp_path):
    client, month = stack["client"], stack["months"][0]
    version = stack["v"][month]
    card = version.description
    for section in SECTIONS:
        assert section in card, section
    run = client.get_run(version.run_id)
    assert f"| AUC (ranking) | {run.data.metrics['auc']:.3f} [" in card
    with psycopg.connect(stack["url"]) as conn:
        labelled, churners = conn.execute(
            "select count(*), count(*) filter (where churn_label) from marts.churn_labels "
            "where as_of = %s",
            (month,),
        ).fetchone()
        profile = pd.DataFrame(
            conn.execute(
                "select user_id, contract_type from marts.subscriptions_profile_snapshots "
                "where as_of = %s",
                (month,),
            ).fetchall(),
            columns=["user_id", "contract_type"],
        )
    assert f"{labelled:,} labelled users, churn rate {churners / labelled:.1%}" in card
    # The segment table against the run's own holdout joined to the marts, by hand.
    holdout_file = client.download_artifacts(run.info.run_id, HOLDOUT_ARTIFACT, str(tmp_path))
    holdout = pd.read_parquet(holdout_file)
    # (a holdout logged with churn_v2's columns carries contract_type already: the marts' wins)
    joined = holdout.drop(columns=["contract_type"], errors="ignore").merge(profile, on="user_id")
    assert len(joined) == len(holdout)
    for contract, rows in joined.groupby("contract_type"):
        rate = rows["churn_label"].astype(bool).mean()
        assert f"| Contract type | {contract} | {len(rows):,} | {rate:.1%} |" in card
    for label in ("Senior citizen", "Gender", "Net service"):
        assert f"| {label} |" in card
    # The artifact is the whole card; the description is it too when it fits.
    artifact = client.download_artifacts(run.info.run_id, CARD_ARTIFACT, str(tmp_path / "c"))
    assert Path(artifact).read_text(encoding="utf-8") == card


def test_the_training_set_is_the_runs_dataset_input(stack):
    client, month = stack["client"], stack["months"][0]
    run = client.get_run(stack["v"][month].run_id)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    tags = {tag.key: tag.value for tag in inputs[0].tags}
    assert tags["mlflow.data.context"] == "training"
    dataset = inputs[0].dataset
    assert dataset.name == f"training_set {month}" and dataset.source_type == "http"
    assert f"/assets/training_set?partition={month}" in dataset.source
    with psycopg.connect(stack["url"]) as conn:
        (rows,) = conn.execute(
            "select count(*) from features.training_set where as_of = %s", (month,)
        ).fetchone()
    assert f'"num_rows": {rows}' in dataset.profile
    assert dataset.digest in stack["v"][month].description


def test_production_models_decision_is_written_into_the_card(stack):
    first, second = (stack["v"][m] for m in stack["months"])
    first_card = stack["client"].get_model_version(REGISTERED_MODEL, first.version).description
    assert PENDING_DECISION not in first_card
    assert "**promote** (" in first_card and "[Dagster run](http" in first_card
    decision = metadata(stack["results"][1], "production_model")["decision"]
    assert f"**{decision}** (" in second.description


def test_the_experiment_opens_on_training_runs(stack):
    experiment = stack["client"].get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == CUSTOM_MODEL_DEVELOPMENT


def test_dagster_and_mlflow_link_to_each_other_over_http(stack):
    client, month = stack["client"], stack["months"][0]
    result = stack["results"][0]
    version = stack["v"][month]
    model = metadata(result, "churn_model")
    ui = f"{DEFAULT_MLFLOW_UI_URL}/#/"
    assert model["mlflow_run_url"].startswith(ui) and version.run_id in model["mlflow_run_url"]
    assert model["model_version_url"].startswith(f"{ui}models/{REGISTERED_MODEL}/versions/")
    assert f"/versions/{version.version}?" in model["model_version_url"]
    assert f"/runs/{version.run_id}/artifacts/{CARD_ARTIFACT}" in model["model_card_url"]
    assert "## Intended use" in model["model_card"]
    promotion = metadata(result, "production_model")
    assert f"/versions/{promotion['production_version']}?" in promotion["production_version_url"]
    # Back from MLflow: the Dagster run's page on the run and on the version.
    run_url = f"{DEFAULT_UI_URL}/runs/{result.run_id}"
    assert client.get_run(version.run_id).data.tags["dagster_run_url"] == run_url
    assert version.tags["dagster_run_url"] == run_url
    # No link anywhere in the metadata points at a local file.
    for result in stack["results"]:
        for event in result.get_asset_materialization_events():
            for key, value in event.materialization.metadata.items():
                assert "file://" not in str(value.value), key


def test_a_move_by_hand_is_written_into_the_card_too(stack):
    # Last in the module: it moves `production`.
    from streamflow_dagster.ml.manual_moves import promote_by_hand
    from streamflow_dagster.ml.model_card import record_move
    from streamflow_dagster.ml.registry import PRODUCTION_ALIAS, alias_version

    client = stack["client"]
    production = alias_version(client, PRODUCTION_ALIAS).version
    (target,) = [v.version for v in stack["v"].values() if v.version != production]
    moved = promote_by_hand(client, int(target), run="analyst@laptop")
    assert record_move(client, moved)
    card = client.get_model_version(REGISTERED_MODEL, target).description
    assert f"**promote** ({moved.recorded_at}). manual promote of v{target}" in card
    assert "by analyst@laptop" in card and f"champion v{production} (" in card
