"""The API's pure parts: the A/B split, the compiled scoring path, error text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from streamflow_dagster.cli.serve import serve
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.dataset import model_input
from streamflow_dagster.ml.training import candidates, encoder, train
from streamflow_dagster.platform.settings import DEFAULT_RELOAD_SECONDS, load_serve_settings
from streamflow_dagster.serving.compiled import compile_model, verify
from streamflow_dagster.serving.errors import reason, redact
from streamflow_dagster.serving.predict import edge_rows, make_scorer
from streamflow_dagster.serving.split import CHALLENGER, PRODUCTION, Split, bucket
from tests.integration.ml.support import FEATURES, training_frame


# -- split -----------------------------------------------------------------------------------
def test_split_share_and_stability_over_10000_ids():
    ids = [f"u{i:07d}" for i in range(10_000)]
    split = Split("challenger", 0.2)
    variants = [split.variant(u) for u in ids]
    share = variants.count(CHALLENGER) / len(ids)
    # Binomial s.d. at n=10,000, p=0.2 is 0.004: 0.015 is almost 4 s.d.
    assert abs(share - 0.2) < 0.015
    assert variants == [Split("challenger", 0.2).variant(u) for u in ids]  # same id, same answer
    wider = Split("challenger", 0.3)
    # Growing the share only moves users from production to the challenger.
    moved = [wider.variant(u) for u, v in zip(ids, variants, strict=True) if v == CHALLENGER]
    assert set(moved) == {CHALLENGER}


def test_inactive_split_sends_everyone_to_production():
    assert Split().variant("u1") == PRODUCTION
    assert Split("challenger", 0.0).variant("u1") == PRODUCTION
    assert Split(None, 0.5).variant("u1") == PRODUCTION
    assert Split("challenger", 1.0).variant("u1") == CHALLENGER
    assert 0.0 <= bucket("") < 1.0
    with pytest.raises(ValueError, match="share from 0 to 1"):
        Split("challenger", 1.5)


# -- compiled scoring ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def month(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("landing")
    summary = generate_landing(folder, users=2500, months=1, seed=21)[0]
    return training_frame(folder / summary.as_of.isoformat())


def rows_of(frame: pd.DataFrame) -> list[dict]:
    """Feature rows as the online read returns them (Python values, None when unset)."""
    values = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None)
    return values.to_dict("records")


def tricky_rows(frame: pd.DataFrame) -> list[dict]:
    rows = rows_of(frame.head(50))
    rng = np.random.default_rng(3)
    for row in rows[:25]:  # unset values and unknown categories mixed in
        for name in rng.choice(FEATURES, size=3, replace=False):
            row[name] = None
    rows[30]["net_service"] = "satellite"
    return [*rows, *edge_rows(FEATURES, rows[40:41])]


@pytest.mark.parametrize("algorithm", ["hist_gradient_boosting", "random_forest"])
def test_compiled_path_equals_scikit_learn_bit_for_bit(month, algorithm):
    pipeline = candidates(seed=42)[algorithm]
    X = model_input(month, FEATURES)
    pipeline.fit(X, month["churn_label"])
    model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=0.3).fit(
        X, month["churn_label"]
    )
    compiled = compile_model(model)
    assert compiled is not None
    rows = rows_of(month) + tricky_rows(month)
    expected = model.predict_proba(model_input(pd.DataFrame(rows, columns=FEATURES), FEATURES))
    assert np.array_equal(compiled.probability(rows), expected[:, 1])
    assert verify(compiled, model, FEATURES, rows)


def test_scorer_answers_like_the_model_on_both_paths(month):
    trained = train(month, FEATURES)
    rows = rows_of(month.head(300)) + tricky_rows(month)
    frame = model_input(pd.DataFrame(rows, columns=FEATURES), FEATURES)
    fast = make_scorer(trained.model, FEATURES, rows_of(month.head(500)))
    slow = make_scorer(trained.model, FEATURES, [])  # no sample: not verified, sklearn serves
    assert fast.compiled is not None and slow.compiled is None
    for scorer in (fast, slow):
        scored = scorer.score(rows)
        assert [s.churn_probability for s in scored] == list(
            trained.model.predict_proba(frame)[:, 1]
        )
        assert [s.prediction for s in scored] == [int(v) for v in trained.model.predict(frame)]


def test_unknown_model_shapes_are_not_compiled(month):
    X = model_input(month, FEATURES)
    logistic = Pipeline([("encode", encoder()), ("model", LogisticRegression(max_iter=5000))])
    logistic.fit(X.fillna(0), month["churn_label"])
    assert compile_model(logistic) is None
    scorer = make_scorer(logistic, FEATURES, rows_of(month.head(10)))
    assert scorer.compiled is None
    row = rows_of(month.head(1).fillna(0))
    assert (
        scorer.score(row)[0].churn_probability
        == logistic.predict_proba(model_input(month.head(1).fillna(0), FEATURES))[0, 1]
    )


def test_a_compiled_path_that_disagrees_is_not_used(month, monkeypatch):
    trained = train(month, FEATURES)
    compiled = compile_model(trained.model)
    broken = compiled.__class__(**{**compiled.__dict__, "baseline": compiled.baseline + 1e-9})
    monkeypatch.setattr("streamflow_dagster.serving.predict.compile_model", lambda m: broken)
    assert make_scorer(trained.model, FEATURES, rows_of(month.head(200))).compiled is None


# -- error text ------------------------------------------------------------------------------
def test_error_text_is_one_line_without_credentials():
    error = RuntimeError(
        "could not reach postgresql+psycopg://bob:s3cr3t@db:5432/mlflow\nTraceback ..."
    )
    assert reason(error) == "could not reach postgresql+psycopg://bob:***@db:5432/mlflow"
    assert redact("host=db password='x y' user=bob") == "host=db password=*** user=bob"
    assert reason(ValueError(), with_type=True) == "ValueError"


# -- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, value",
    [
        ("STREAMFLOW_SERVE_CHALLENGER_SHARE", "1.5"),
        ("STREAMFLOW_SERVE_CHALLENGER_SHARE", "ten percent"),
        ("STREAMFLOW_SERVE_CHALLENGER_SHARE", "nan"),
        ("STREAMFLOW_SERVE_RELOAD_SECONDS", "0"),
        ("STREAMFLOW_SERVE_RELOAD_SECONDS", "inf"),
    ],
)
def test_a_malformed_serve_setting_is_a_usage_error_naming_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}': give"):
        load_serve_settings()
    result = CliRunner().invoke(serve, [])  # refused before any server starts
    assert result.exit_code == 2
    assert f"{name}='{value}'" in result.output


def test_serve_settings_defaults_and_values(monkeypatch):
    for name in ("STREAMFLOW_SERVE_CHALLENGER_SHARE", "STREAMFLOW_SERVE_RELOAD_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    assert load_serve_settings().challenger_share == 0.0
    assert load_serve_settings().reload_seconds == DEFAULT_RELOAD_SECONDS
    monkeypatch.setenv("STREAMFLOW_SERVE_CHALLENGER_SHARE", "0.25")
    assert load_serve_settings().challenger_share == 0.25
