"""Failure classes of the API: an outage is a 503, a bug is a 500 logged with its stack trace,
and a compiled path that cannot read a model falls back to scikit-learn instead of failing."""

from __future__ import annotations

import logging
import socket
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier

from streamflow_dagster.features.online_read import UserFeatures
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.dataset import model_input
from streamflow_dagster.ml.training import candidates
from streamflow_dagster.serving.app import create_app
from streamflow_dagster.serving.compiled import compile_model
from streamflow_dagster.serving.engine import Engine
from streamflow_dagster.serving.errors import is_store_outage
from streamflow_dagster.serving.metrics import build_metrics
from streamflow_dagster.serving.predict import make_scorer
from streamflow_dagster.serving.split import Split
from tests.integration.ml.support import FEATURES, training_frame


class BuggyReader:
    """A reader whose read has a bug: a real exception class, raised from our side."""

    features = ["watch_hours_30d"]
    service_features: dict = {}  # one reader for everything (no per-service readers)

    def read(self, conn, user_ids):
        return {user: UserFeatures(user, {}, [], None)[0] for user in user_ids}  # TypeError


def closed_port_url() -> str:
    """A database URL on a port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def api(make_reader, database_url: str | None = None) -> TestClient:
    engine = Engine(
        database_url or closed_port_url(),
        make_reader,
        slots=None,  # /features never reads a model
        split=Split,
        record=lambda rows: None,
        observe_store=lambda seconds: None,
    )
    if database_url is None:  # the reader never gets a real connection
        engine._connected = lambda: None

    async def warm_up(wait_s: float) -> None:  # nothing to load: the engine has its model
        return None

    service = SimpleNamespace(
        metrics=build_metrics(),
        engine=engine,
        start=engine.start,
        stop=engine.stop,
        warm_up=warm_up,
    )
    return TestClient(create_app(service))


def test_a_bug_while_reading_is_a_500_with_json_and_logged_with_its_stack(caplog):
    caplog.set_level(logging.ERROR, logger="streamflow.serve")
    with api(BuggyReader) as http:
        response = http.get("/features/u1")
    assert response.status_code == 500
    body = response.json()
    assert body["error"].startswith("internal error: TypeError")
    assert "not an outage" in body["error"] and "Traceback" not in response.text
    assert "online store" not in body["error"]
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and logged[0].exc_info[0] is TypeError
    assert "Traceback" in caplog.text and "BuggyReader" not in body["error"]


def test_a_bug_building_the_reader_is_a_500_not_a_store_outage():
    def broken_reader():
        return {}["churn_v1"]  # KeyError: a bug, not the database

    with api(broken_reader) as http:
        response = http.get("/features/u1")
    assert response.status_code == 500 and "KeyError" in response.json()["error"]


def test_an_unreachable_store_is_a_503():
    def registry_down():
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as error:
            raise sqlalchemy.exc.OperationalError("select 1", {}, error) from error

    with api(registry_down) as http:
        response = http.get("/features/u1")
    assert response.status_code == 503
    assert response.json()["error"].startswith("feature service unavailable")

    # A real refused connection from psycopg on the read itself.
    with api(BuggyReader, database_url=closed_port_url()) as http:
        response = http.get("/features/u1")
    assert response.status_code == 503
    assert response.json()["error"].startswith("online store unreachable")


def test_outage_classification_follows_the_cause_chain():
    assert is_store_outage(TimeoutError("read timed out"))
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("registry read failed") from inner
    except RuntimeError as wrapped:
        assert is_store_outage(wrapped)
    assert not is_store_outage(KeyError("x")) and not is_store_outage(ValueError("bad"))
    assert not is_store_outage(FileNotFoundError("feature_store.yaml"))  # not an outage


# -- compiled path after a scikit-learn upgrade -------------------------------------------------
class LossWithoutLink:
    """The booster's loss as a later scikit-learn might shape it: predict_proba still works
    (scikit-learn's own path uses it), the `link` attribute the compiled path reads is gone."""

    def __init__(self, loss):
        self._loss = loss

    def predict_proba(self, raw):
        return self._loss.predict_proba(raw)


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("landing")
    summary = generate_landing(folder, users=800, months=1, seed=5)[0]
    return training_frame(folder / summary.as_of.isoformat())


def test_a_model_the_compiled_path_cannot_read_is_served_by_scikit_learn(month, caplog):
    X = model_input(month, FEATURES)
    pipeline = candidates(seed=42)["hist_gradient_boosting"].fit(X, month["churn_label"])
    model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=0.3).fit(
        X, month["churn_label"]
    )
    booster = pipeline.steps[-1][1]
    booster._loss = LossWithoutLink(booster._loss)
    with pytest.raises(AttributeError):
        compile_model(model)  # what the upgrade does to the compiled path

    rows = month[FEATURES].head(50).astype(object).where(month[FEATURES].head(50).notna(), None)
    rows = rows.to_dict("records")
    caplog.set_level(logging.WARNING, logger="streamflow.serve")
    scorer = make_scorer(model, FEATURES, rows)  # loads, does not raise
    assert scorer.compiled is None
    assert "AttributeError" in caplog.text and "predict_proba serves it" in caplog.text
    expected = model.predict_proba(model_input(month.head(50), FEATURES))[:, 1]
    assert np.array_equal([s.churn_probability for s in scorer.score(rows)], expected)
