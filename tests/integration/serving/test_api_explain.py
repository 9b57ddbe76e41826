"""`explain=true` on the real stack: the registry's trained versions, Feast's online features.

Each registered version is put in `production` in turn; the API's contributions must equal
an independent computation from scikit-learn's own trees (tests/unit/serving/test_explain.py)
and add up, with `base_value`, to scikit-learn's `decision_function` (log-odds, boosting) or
`predict_proba` (probability, forest) on the same online features.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from streamflow_dagster.ml import training
from streamflow_dagster.ml.dataset import model_features, model_input
from streamflow_dagster.ml.month import train_month
from streamflow_dagster.ml.registry import AS_OF_TAG, PRODUCTION_ALIAS, load_version, set_alias
from streamflow_dagster.platform.mlflow_store import MlflowStore, fluent_store
from streamflow_dagster.serving.compiled import _unwrap
from tests.integration.ml.support import FEATURES, training_frame
from tests.integration.serving.api_support import (
    TOKEN,
    RunningApi,
    Stack,
    build_stack,
    make_service,
)
from tests.unit.serving.test_explain import boosting_contributions, encoded, forest_contributions

pytestmark = pytest.mark.integration

USERS = 12
# Answers round explanation terms to 6 decimals: 16 rounded terms stay within this.
ROUNDING = 1e-5


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Stack:
    """The API tests' stack (v1, v2: whichever kind wins each month) and v3, a boosting model.

    v3 goes through the same train_month (logging, registry, checks) with the forest left out
    of the candidates, so both tree kinds are served from the real registry whatever wins.
    """
    folder = tmp_path_factory.mktemp("api-explain")
    stack = build_stack(pg_server.url("postgres"), folder)
    month = stack.months[-1]
    boosting_only = {"hist_gradient_boosting": training.candidates(0)["hist_gradient_boosting"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "candidates", lambda *args, **kwargs: boosting_only)
        store = MlflowStore(stack.tracking_uri, folder / "artifacts")
        with fluent_store(store), mlflow.start_run(run_name=f"churn_model {month} boosting"):
            trained = train_month(
                stack.client,
                training_frame(folder / "landing" / month),
                as_of=month,
                feature_service="churn_v1",
                dagster_run_id="run-boosting",
            )
    assert trained.logged.version == "3" and trained.trained.algorithm == "hist_gradient_boosting"
    return stack


@pytest.fixture(scope="module")
def api(stack):
    with RunningApi(make_service(stack.database_url, stack.tracking_uri)) as running:
        running.wait_ready()
        yield running
    set_alias(stack.client, PRODUCTION_ALIAS, 1)


def serve_version(stack: Stack, api: RunningApi, version: int) -> None:
    set_alias(stack.client, PRODUCTION_ALIAS, version)
    with api.client() as http:
        http.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        body = http.get("/ready").json()
    assert body["models"]["production"]["version"] == version, body


def test_explanations_are_exact_for_every_trained_version(stack, api):
    users = stack.online_users[:USERS]
    kinds = set()
    for version in (1, 2, 3):
        serve_version(stack, api, version)
        model = load_version(stack.client, version)
        pipeline = _unwrap(model)
        kind = type(pipeline[-1]).__name__
        kinds.add(kind)
        with api.client() as http:
            answers = [http.get(f"/predict/{u}", params={"explain": "true"}).json() for u in users]
        rows = [answer["features_used"] for answer in answers]
        features = model_features(model)
        frame = model_input(pd.DataFrame(rows, columns=features), features)
        X, source = encoded(pipeline, rows, features)
        if kind == "RandomForestClassifier":
            raw = pipeline.predict_proba(frame)[:, 1]
            independent = forest_contributions(pipeline[-1], X, source)
            output, probability = "probability", raw
        else:
            raw = pipeline.decision_function(frame)
            independent = boosting_contributions(pipeline[-1], X, source)
            output, probability = "log_odds", expit(raw)
        month = stack.client.get_model_version("streamflow_churn", str(version)).tags[AS_OF_TAG]
        for position, answer in enumerate(answers):
            why = answer["explanation"]
            assert answer["model_version"] == version and answer["model_as_of"] == month
            assert answer["decision_threshold"] == round(model.threshold, 4)
            assert answer["churn_probability"] == round(float(probability[position]), 4)
            assert why["method"] == "path_contributions" and why["output"] == output
            listed = why["top_contributions"]
            assert len(listed) == 5
            total = why["base_value"] + sum(c["contribution"] for c in listed)
            assert total + why["other_features"] == pytest.approx(why["raw_output"], abs=ROUNDING)
            assert why["raw_output"] == pytest.approx(raw[position], abs=ROUNDING)
            for item in listed:
                assert item["value"] == answer["features_used"][item["feature"]]
                column = FEATURES.index(item["feature"])  # the independent table's order
                assert item["contribution"] == pytest.approx(
                    independent[position, column], abs=ROUNDING
                )
            sizes = [abs(c["contribution"]) for c in listed]
            assert sizes == sorted(sizes, reverse=True)
    assert kinds == {"HistGradientBoostingClassifier", "RandomForestClassifier"}


def test_post_explains_by_query_or_body_and_only_when_asked(stack, api):
    serve_version(stack, api, 1)
    users = stack.online_users[:5]
    with api.client() as http:
        plain = http.post("/predict", json={"user_ids": users}).json()
        by_body = http.post("/predict", json={"user_ids": users, "explain": True}).json()
        by_query = http.post("/predict?explain=true", json={"user_ids": users}).json()
        one = http.get(f"/predict/{users[0]}").json()
    assert all("explanation" not in p for p in plain["predictions"]) and "explanation" not in one
    assert by_body == by_query
    assert [p["user_id"] for p in by_body["predictions"]] == users
    for with_reason, without in zip(by_body["predictions"], plain["predictions"], strict=True):
        assert {k: v for k, v in with_reason.items() if k != "explanation"} == without
        assert len(with_reason["explanation"]["top_contributions"]) == 5
    # The contract's keys are all still there, with the added ones.
    assert {"user_id", "prediction", "churn_probability", "model_version", "features_used"} <= set(
        one
    )
    assert one["churn_probability"] == round(one["churn_probability"], 4)
    assert np.isfinite(one["decision_threshold"]) and one["model_as_of"] == stack.months[0]
