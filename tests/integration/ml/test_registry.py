"""The model lifecycle on the real registry: MLflow tracking and registry in the embedded
PostgreSQL, artifacts on disk. Two months trained, promoted, rolled back, promoted by hand."""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from streamflow_dagster.cli.model import model as model_cli
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml import code_version
from streamflow_dagster.ml.decision_chain import decide_and_move
from streamflow_dagster.ml.manual_moves import rollback
from streamflow_dagster.ml.month import train_month
from streamflow_dagster.ml.promotion import Action
from streamflow_dagster.ml.registry import (
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    REGISTERED_MODEL,
    alias_version,
    get_version,
    load_version,
)
from streamflow_dagster.platform.mlflow_store import fluent_store
from tests.integration.ml.support import fresh_mlflow_store, training_frame

pytestmark = pytest.mark.integration

USERS = 2500


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models-landing")
    summaries = generate_landing(folder, users=USERS, months=2, seed=5)
    return [training_frame(folder / s.as_of.isoformat()) for s in summaries]


@pytest.fixture
def client(pg_server, tmp_path):
    store = fresh_mlflow_store(pg_server.url("postgres"), tmp_path / "artifacts")
    with fluent_store(store):
        yield MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
        assert mlflow.active_run() is None


def train(client, frame, run_id="dagster-run-1", **kwargs):
    as_of = str(frame["as_of"].iloc[0])
    with mlflow.start_run(run_name=f"churn_model {as_of}"):
        return train_month(
            client,
            frame,
            as_of=as_of,
            feature_service="churn_v1",
            dagster_run_id=run_id,
            **kwargs,
        )


def aliases(client) -> tuple[int | None, int | None]:
    found = [alias_version(client, a) for a in (PRODUCTION_ALIAS, PREVIOUS_ALIAS)]
    return tuple(int(v.version) if v else None for v in found)


def test_same_data_and_seed_log_the_same_metrics(client, months):
    first, second = train(client, months[0]), train(client, months[0])
    logged = [client.get_run(m.logged.run_id).data.metrics for m in (first, second)]
    for metrics in logged:
        metrics.pop("train_seconds")
    assert logged[0] == logged[1]
    assert {"auc", "f1", "precision", "recall", "accuracy", "log_loss", "rows"} <= set(logged[0])
    assert (first.logged.version, second.logged.version) == ("1", "2")


def test_two_months_promote_rollback_and_promote_by_hand(client, months):
    january = train(client, months[0], run_id="run-jan")
    version = get_version(client, january.logged.version)
    assert version.tags["as_of"] == str(months[0]["as_of"].iloc[0])
    assert version.tags["dagster_run_id"] == "run-jan"
    assert version.tags["code_version"] == code_version()
    assert version.tags["checks"] == "passed"
    run = client.get_run(january.logged.run_id)
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/precision_recall.png", "plots/confusion_matrix.png"} < artifacts

    first = decide_and_move(client, run="run-jan")
    assert first.decision.action is Action.PROMOTE
    assert aliases(client) == (1, None)

    train(client, months[1], run_id="run-feb")
    # A margin of -1 makes February win whatever the scores: this test is about the moves.
    second = decide_and_move(client, run="run-feb", min_auc_gain=-1.0)
    assert second.decision.action is Action.PROMOTE
    assert aliases(client) == (2, 1)
    tags = get_version(client, 2).tags
    assert tags["decision.action"] == "promote"
    assert tags["decision.champion_version"] == "1"
    assert tags["decision.run"] == "run-feb"
    assert float(tags["decision.challenger_auc"]) == pytest.approx(second.decision.challenger.auc)
    assert float(tags["decision.champion_auc"]) == pytest.approx(second.decision.champion.auc)

    # Nothing new: nothing moves and nothing is written.
    rerun = decide_and_move(client, run="run-again", min_auc_gain=-1.0)
    assert rerun.decision.action is Action.UNCHANGED and rerun.recorded_at is None
    assert get_version(client, 2).tags["decision.run"] == "run-feb"

    back = rollback(client, run="cli:test")
    assert aliases(client) == (1, 2)
    assert back.decision.challenger.version == 1
    assert get_version(client, 1).tags["decision.action"] == "rollback"
    assert get_version(client, 2).tags["demoted_by_hand"] == "true"
    # The automatic step never undoes a rollback.
    after = decide_and_move(client, run="run-after-rollback", min_auc_gain=-1.0)
    assert after.decision.action is not Action.PROMOTE
    assert aliases(client) == (1, 2)

    result = CliRunner().invoke(model_cli, ["promote", "2"], env=_cli_env(client))
    assert result.exit_code == 0, result.output
    assert aliases(client) == (2, 1)
    assert "demoted_by_hand" not in get_version(client, 2).tags
    assert get_version(client, 2).tags["decision.action"] == "manual_promote"


def test_failed_checks_are_recorded_and_never_promoted(client, months):
    month = train(client, months[0], auc_floor=0.999)
    assert month.failed_checks == ["auc_above_floor"]
    assert get_version(client, month.logged.version).tags["checks"] == "failed"
    moved = decide_and_move(client, run="run-x")
    assert moved.decision.action is Action.REJECT
    assert "failed its checks (auc_above_floor)" in moved.decision.reason
    assert aliases(client) == (None, None)


def test_registered_model_loads_with_the_declared_allow_list(client, months):
    month = train(client, months[1])
    loaded = load_version(client, month.logged.version)
    holdout = month.trained.split.X_holdout
    assert (loaded.predict_proba(holdout) == month.trained.model.predict_proba(holdout)).all()
    info = client.get_registered_model(REGISTERED_MODEL)
    assert info.name == REGISTERED_MODEL


def _cli_env(client) -> dict[str, str]:
    """The CLI resolves its store from the environment, as a user's shell would."""
    return {"MLFLOW_TRACKING_URI": client.tracking_uri}
