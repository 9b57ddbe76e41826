"""`streamflow model status` reads MLflow's registry tables directly (its client costs seconds
to import): on a real MLflow store it must say exactly what MlflowClient says."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from streamflow_dagster.cli.main import main
from streamflow_dagster.cli.model_status import read_status_client, read_status_sql
from streamflow_dagster.ml.registry import REGISTERED_MODEL
from streamflow_dagster.platform.mlflow_store import libpq_url
from tests.integration.ml.support import fresh_mlflow_store

pytestmark = pytest.mark.integration

AUCS = {1: 0.801234, 2: 0.87336, 3: 0.79}  # v2: 0.8734 rounded (a cut would say 0.8733)


@pytest.fixture
def registry(pg_server, tmp_path):
    store = fresh_mlflow_store(pg_server.url("postgres"), tmp_path / "artifacts")
    uri = store.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("status", (tmp_path / "artifacts").as_uri())
    client.create_registered_model(REGISTERED_MODEL)
    for version, auc in AUCS.items():
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "auc", auc)
        client.create_model_version(
            REGISTERED_MODEL,
            source=(tmp_path / "artifacts" / f"m{version}").as_uri(),
            run_id=run.info.run_id,
            tags={
                "as_of": f"2024-0{version}-28",
                "holdout_auc": f"{auc:.6f}",
                "checks": "passed",
                "decision.action": "promote" if version < 3 else "keep",
            },
        )
    client.set_registered_model_alias(REGISTERED_MODEL, "production", "2")
    client.set_registered_model_alias(REGISTERED_MODEL, "previous", "1")
    client.delete_model_version(REGISTERED_MODEL, "3")  # soft-deleted: not listed
    return uri, client


def test_the_sql_read_equals_mlflow_client(registry):
    uri, client = registry
    with psycopg.connect(libpq_url(uri)) as conn:
        direct = read_status_sql(conn)
    assert direct == read_status_client(client)
    assert direct.aliases == {"production": 2, "previous": 1} and direct.latest == [1, 2]
    assert direct.auc == {1: AUCS[1], 2: AUCS[2]}


def test_status_prints_a_header_and_rounded_aucs(registry, monkeypatch):
    uri, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = CliRunner().invoke(main, ["model", "status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "production  v2 (2024-02-28)"
    assert lines[1] == "previous    v1 (2024-01-28)"
    assert lines[3].split()[:4] == ["version", "as_of", "holdout", "AUC"]
    assert lines[5].split() == ["v2", "2024-02-28", "0.8734", "passed", "promote"]
    assert len(lines) == 6  # v3 was deleted
