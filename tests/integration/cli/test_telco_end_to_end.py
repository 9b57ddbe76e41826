"""The real table end to end: the IBM Telco CSV as two landing months in its own spellings,
through `streamflow import-telco`, `streamflow run` and `streamflow serve`, as a user runs them.

January is the table as exported (7,043 customers, with labels); February is the same
customers a month older without January's churners and without labels. The CLI runs in its
own STREAMFLOW_HOME (its own embedded PostgreSQL, MLflow and Dagster instance), the API as a
process on a free port. Prints the figures the integrator reports (run with -s to see them).
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score

from streamflow_dagster.features.store import feature_names, feature_store
from streamflow_dagster.features.training_table import load_training_set, training_set_status
from streamflow_dagster.ml.dataset import CATEGORICAL_FEATURES, LABEL, SEED, model_input
from streamflow_dagster.ml.registry import (
    AS_OF_TAG,
    PRODUCTION_ALIAS,
    alias_version,
    load_holdout,
)
from streamflow_dagster.platform.mlflow_store import backend_store_uri

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

TELCO_CSV = Path(__file__).resolve().parents[4] / "shared" / "data" / "telco_customer_churn.csv"
JANUARY, FEBRUARY = "2024-01-31", "2024-02-29"
TELCO_ROWS = 7043
# The literature's leak-free holdout AUC with Telco's own columns is about 0.84; churn_v2,
# which reads them (contract, add-ons, customer attributes), must reach this (issue 13).
CHURN_V2_TARGET_AUC = 0.845
CUSTOMER = "7590-VHVEG"  # the table's first row: DSL, month-to-month, tenure 1, stayed
CUSTOMER_IN_FEBRUARY = {
    "net_service": "DSL",
    "paperless_billing": True,
    "plan_stream_movies": False,
    "plan_stream_tv": False,
    "months_active": 2,
    "monthly_fee": 29.85,
}


def streamflow(env: dict, *args: str, timeout: float = 3000) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamflow_dagster.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def plain_random_forest_holdout(
    training_set: pd.DataFrame, holdout_users, features: list[str]
) -> tuple[float, float]:
    """AUC and F1 of scikit-learn's default random forest on the model's holdout users."""
    categorical = [c for c in CATEGORICAL_FEATURES if c in features]
    X = pd.get_dummies(model_input(training_set, features), columns=categorical, dtype=float)
    in_holdout = training_set["user_id"].isin(set(holdout_users)).to_numpy()
    y = training_set[LABEL].astype(bool).to_numpy()
    forest = RandomForestClassifier(random_state=SEED, n_jobs=1)
    forest.fit(X[~in_holdout], y[~in_holdout])
    scores = forest.predict_proba(X[in_holdout])[:, 1]
    return roc_auc_score(y[in_holdout], scores), f1_score(y[in_holdout], scores >= 0.5)


@pytest.fixture
def cli_env(tmp_path, server_home) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STREAMFLOW_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME")
        and not k.startswith(("STREAMFLOW_PG_", "STREAMFLOW_SERVE_"))
    }
    env["STREAMFLOW_HOME"] = str(server_home("telco"))  # a server as root can reach it
    env["STREAMFLOW_LANDING_DIR"] = str(tmp_path / "landing")
    yield env
    streamflow(env, "db", "stop", timeout=120)


@pytest.mark.skipif(
    not TELCO_CSV.exists(),
    reason=f"the real Telco table is not at {TELCO_CSV} (CI has ../shared beside the clone)",
)
def test_the_telco_table_through_the_cli_and_the_api(cli_env, tmp_path):
    imported = streamflow(
        cli_env, "import-telco", str(TELCO_CSV), "--months", "2", "--out", str(tmp_path / "landing")
    )
    assert imported.returncode == 0, imported.stderr
    subscriptions = pd.read_csv(tmp_path / "landing" / JANUARY / "subscriptions.csv")
    assert {"Month-to-month", "One year", "Two year"} == set(subscriptions["contract_type"])
    assert {"DSL", "Fiber optic", "No"} == set(subscriptions["net_service"])
    assert not (tmp_path / "landing" / FEBRUARY / "labels.csv").exists()

    started = time.monotonic()
    run = streamflow(cli_env, "run")
    run_seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    # February says why it has no model, once, and lists no checks of a model never trained.
    assert f"no churn_model: labels for {FEBRUARY} have not landed yet" in run.stdout
    assert "check failed: churn_model" not in run.stdout

    url = streamflow(cli_env, "db", "url").stdout.strip()
    client = MlflowClient(tracking_uri=backend_store_uri(url), registry_uri=backend_store_uri(url))
    production = alias_version(client, PRODUCTION_ALIAS)
    assert production is not None and production.tags[AS_OF_TAG] == JANUARY
    metrics = client.get_run(production.run_id).data.metrics
    holdout = load_holdout(client, production)
    with psycopg.connect(url) as conn:
        january = training_set_status(conn, date.fromisoformat(JANUARY))
        february = training_set_status(conn, date.fromisoformat(FEBRUARY))
        training_set = load_training_set(conn, date.fromisoformat(JANUARY))
        scored = dict(
            conn.execute(
                "select as_of::text, count(*) from scores.churn_scores group by 1"
            ).fetchall()
        )
    assert january.rows == TELCO_ROWS == len(training_set) and january.labels_landed
    assert february is not None and not february.labels_landed
    churners = int(pd.read_csv(TELCO_CSV)["Churn"].eq("Yes").sum())
    assert scored[FEBRUARY] == TELCO_ROWS - churners  # February scored by January's model

    # Both feature services trained on January and compared on the same holdout; churn_v2
    # (Telco's contract, add-ons and customer attributes) wins and is Production.
    v1_auc, v2_auc = metrics["holdout_auc.churn_v1"], metrics["holdout_auc.churn_v2"]
    assert production.tags["feature_service"] == "churn_v2"
    assert metrics["auc"] == pytest.approx(v2_auc)
    assert v2_auc >= CHURN_V2_TARGET_AUC and v2_auc > v1_auc
    served_features = feature_names(feature_store(url), "churn_v2")
    forest_auc, forest_f1 = plain_random_forest_holdout(
        training_set, holdout["user_id"], served_features
    )
    assert metrics["auc"] > forest_auc  # the registered model beats a plain random forest

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamflow_dagster.cli.main", "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:  # the port opens once the Production model and the store are loaded
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the API did not open its port"
                time.sleep(0.5)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            ready = http.get("/ready")
            predicted = http.get(f"/predict/{CUSTOMER}")
            explained = http.get(f"/predict/{CUSTOMER}", params={"explain": "true"})
            features = http.get(f"/features/{CUSTOMER}")
            churner = http.get(f"/features/{churned_customer()}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert ready.status_code == 200, ready.text
    assert predicted.status_code == 200, predicted.text
    answer = predicted.json()
    assert answer["model_version"] == int(production.version)
    assert answer["as_of"] == FEBRUARY
    assert answer["feature_service"] == "churn_v2"  # read through the Production's service
    used = answer["features_used"]
    assert list(used) == served_features
    assert {k: used[k] for k in CUSTOMER_IN_FEBRUARY} == pytest.approx(CUSTOMER_IN_FEBRUARY)
    assert used["contract_type"] == "Month-to-month" and used["add_on_count"] == 1
    seed_features = features.json()["features"]  # /features: churn_v1's 14, as before
    assert len(seed_features) == 14 and seed_features == {k: used[k] for k in seed_features}
    assert churner.status_code == 404  # left after January: not in February's snapshot
    assert_explanation_adds_up(explained, answer)
    calibration = telco_calibration(cli_env, churners / TELCO_ROWS)

    print(
        f"\nTelco end to end: {TELCO_ROWS} rows in January, {scored[FEBRUARY]} scored in "
        f"February; holdout of {len(holdout)}: churn_v1 AUC {v1_auc:.4f}, churn_v2 AUC "
        f"{v2_auc:.4f}; registered model AUC {metrics['auc']:.4f} "
        f"F1 {metrics['f1']:.4f}; plain random forest AUC {forest_auc:.4f} F1 {forest_f1:.4f}; "
        f"two months through `streamflow run` in {run_seconds:.0f} s; calibration of "
        f"{JANUARY} (predicted vs realized churn rate): {calibration}"
    )


def assert_explanation_adds_up(explained: httpx.Response, answer: dict) -> None:
    """explain=true on a Telco user (churn_v2's 26 features, categorical ones included): the
    contributions and the base value add up to the raw output, which is the answer's own
    probability (random forest) or its log-odds (gradient boosting)."""
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["churn_probability"] == answer["churn_probability"]
    reasons = body["explanation"]
    assert reasons.get("error") is None, reasons
    total = (
        reasons["base_value"]
        + sum(c["contribution"] for c in reasons["top_contributions"])
        + reasons["other_features"]
    )
    assert total == pytest.approx(reasons["raw_output"], abs=1e-6)
    probability = body["churn_probability"]
    if reasons["output"] == "log_odds":
        assert 1 / (1 + math.exp(-reasons["raw_output"])) == pytest.approx(probability, abs=1e-4)
    else:
        assert reasons["raw_output"] == pytest.approx(probability, abs=1e-4)
    assert {c["feature"] for c in reasons["top_contributions"]} <= set(body["features_used"])


def telco_calibration(env: dict, realized_rate: float) -> str:
    """January's calibration cell of `streamflow status` ("predicted% vs realized%"): the
    figures realized_performance reported for the Telco month, realized = the table's rate."""
    status = streamflow(env, "status", timeout=600)
    assert status.returncode == 0, status.stdout + status.stderr
    (row,) = [line for line in status.stdout.splitlines() if line.startswith(JANUARY)]
    match = re.search(r"(\d+\.\d)% vs (\d+\.\d)%", row)
    assert match, row
    assert float(match.group(2)) == pytest.approx(100 * realized_rate, abs=0.05)
    assert 0 < float(match.group(1)) < 100
    return match.group(0)


def churned_customer() -> str:
    telco = pd.read_csv(TELCO_CSV)
    return telco.loc[telco["Churn"] == "Yes", "customerID"].iloc[0]
