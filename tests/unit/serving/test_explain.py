"""Explanations (serving/explain.py) against independent computations from scikit-learn.

The random forest's contributions are recomputed from each tree's own `decision_path` and
node values (`tree_.value`); the boosting model's from a recursive walk of its predictor
nodes written here. Both must also add up, with the base value, to scikit-learn's own
`decision_function` (log-odds) or `predict_proba` (probability).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from streamflow_dagster.features.online_read import UserFeatures
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.dataset import model_input
from streamflow_dagster.ml.training import candidates, encoder
from streamflow_dagster.serving.engine import Answer
from streamflow_dagster.serving.explain import LOG_ODDS, PROBABILITY, explanation
from streamflow_dagster.serving.model_slots import LoadedModel
from streamflow_dagster.serving.predict import NOT_EXPLAINED, make_scorer
from streamflow_dagster.serving.reasons import explanations
from streamflow_dagster.serving.split import PRODUCTION
from tests.integration.ml.support import FEATURES, training_frame
from tests.unit.serving.test_serving import rows_of, tricky_rows

# float64 sums of a few hundred terms in different orders differ by ~1e-15.
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("landing")
    summary = generate_landing(folder, users=1500, months=1, seed=23)[0]
    return training_frame(folder / summary.as_of.isoformat())


@pytest.fixture(scope="module", params=["hist_gradient_boosting", "random_forest"])
def fitted(request, month):
    pipeline = candidates(seed=7)[request.param]
    pipeline.fit(model_input(month, FEATURES), month["churn_label"])
    model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=0.3).fit(
        model_input(month, FEATURES), month["churn_label"]
    )
    scorer = make_scorer(model, FEATURES, rows_of(month.head(400)), trained_as_of="2024-01-31")
    assert scorer.explainer is not None
    return request.param, pipeline, scorer


def encoded(
    pipeline: Pipeline, rows: list[dict], features: list[str] = FEATURES
) -> tuple[np.ndarray, list[str]]:
    """The encoder's output for the rows, and the input feature of each of its columns."""
    frame = model_input(pd.DataFrame(rows, columns=features), features)
    names = pipeline[:-1].get_feature_names_out()
    source = [n if n in FEATURES else n.rsplit("_", 1)[0] for n in names]
    assert set(source) <= set(FEATURES)
    return pipeline[:-1].transform(frame), source


def forest_contributions(forest, X: np.ndarray, source: list[str]) -> np.ndarray:
    """Path contributions from each tree's decision_path and tree_.value (its own numbers)."""
    X = X.astype(np.float32)  # what the trees compare
    out = np.zeros((len(X), len(FEATURES)))
    for tree in forest.estimators_:
        value, feature = tree.tree_.value[:, 0, 1], tree.tree_.feature
        paths = tree.decision_path(X)
        for row in range(len(X)):
            nodes = sorted(paths.indices[paths.indptr[row] : paths.indptr[row + 1]])
            for parent, child in zip(nodes, nodes[1:], strict=False):
                column = source[feature[parent]]
                out[row, FEATURES.index(column)] += value[child] - value[parent]
    return out / len(forest.estimators_)


def boosting_contributions(boosting, X: np.ndarray, source: list[str]) -> np.ndarray:
    """Path contributions from a recursive walk of each predictor's node records."""
    out = np.zeros((len(X), len(FEATURES)))
    for (predictor,) in boosting._predictors:
        nodes = predictor.nodes
        memo: dict[int, float] = {}

        def expected(i: int, nodes=nodes, memo=memo) -> float:
            if i not in memo:
                node = nodes[i]
                if node["is_leaf"]:
                    memo[i] = float(node["value"])
                else:
                    left, right = int(node["left"]), int(node["right"])
                    n_left, n_right = float(nodes[left]["count"]), float(nodes[right]["count"])
                    memo[i] = (n_left * expected(left) + n_right * expected(right)) / (
                        n_left + n_right
                    )
            return memo[i]

        for row in range(len(X)):
            i = 0
            while not nodes[i]["is_leaf"]:
                x = X[row, nodes[i]["feature_idx"]]
                left = (
                    nodes[i]["missing_go_to_left"]
                    if np.isnan(x)
                    else x <= nodes[i]["num_threshold"]
                )
                child = int(nodes[i]["left"] if left else nodes[i]["right"])
                column = source[nodes[i]["feature_idx"]]
                out[row, FEATURES.index(column)] += expected(child) - expected(i)
                i = child
    return out


def test_contributions_equal_an_independent_walk_and_add_up_to_the_raw_output(month, fitted):
    algorithm, pipeline, scorer = fitted
    rows = rows_of(month.head(60)) + tricky_rows(month)  # unset values, unknown categories
    found = scorer.explain(rows)
    X, source = encoded(pipeline, rows)
    frame = model_input(pd.DataFrame(rows, columns=FEATURES), FEATURES)
    if algorithm == "random_forest":
        expected = forest_contributions(pipeline[-1], X, source)
        raw = pipeline.predict_proba(frame)[:, 1]
        assert found.output == PROBABILITY
    else:
        expected = boosting_contributions(pipeline[-1], X, source)
        raw = pipeline.decision_function(frame)
        assert found.output == LOG_ODDS
    assert found.values.shape == (len(rows), len(FEATURES))
    np.testing.assert_allclose(found.values, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(found.base_value + found.values.sum(axis=1), raw, atol=TOLERANCE)
    np.testing.assert_allclose(found.raw_output, raw, rtol=0, atol=TOLERANCE)
    # Not a trivial split: several features move most rows, in both directions.
    assert (np.abs(found.values) > 1e-6).sum(axis=1).mean() > 3
    assert (found.values > 0).any() and (found.values < 0).any()


def test_base_value_is_the_average_raw_output_over_the_training_rows(month, fitted):
    algorithm, pipeline, scorer = fitted
    frame = model_input(month, FEATURES)
    if algorithm == "hist_gradient_boosting":  # every training row reaches one leaf per tree
        assert scorer.explainer.base_value == pytest.approx(
            pipeline.decision_function(frame).mean(), abs=TOLERANCE
        )
    else:  # a forest's trees saw bootstrap samples: close to the training rows' mean, not equal
        assert scorer.explainer.base_value == pytest.approx(
            pipeline.predict_proba(frame)[:, 1].mean(), abs=0.02
        )


def test_the_answer_lists_the_largest_contributions_and_still_adds_up(month, fitted):
    _, _, scorer = fitted
    rows = rows_of(month.head(5))
    found = scorer.explain(rows)
    for position, row in enumerate(rows):
        body = explanation(found, position, row, top=5)
        listed = body["top_contributions"]
        assert [item["feature"] for item in listed] == sorted(
            (item["feature"] for item in listed),
            key=lambda name: -abs(found.values[position, FEATURES.index(name)]),
        )
        assert len(listed) == 5 and all(item["value"] == row[item["feature"]] for item in listed)
        smallest_listed = min(abs(item["contribution"]) for item in listed)
        others = [
            i for i, name in enumerate(FEATURES) if name not in {x["feature"] for x in listed}
        ]
        assert all(abs(found.values[position, i]) <= smallest_listed + 1e-6 for i in others)
        total = body["base_value"] + sum(i["contribution"] for i in listed) + body["other_features"]
        assert total == pytest.approx(body["raw_output"], abs=1e-5)


def test_a_model_that_is_not_a_tree_ensemble_says_it_has_no_explanation(month):
    X = model_input(month, FEATURES).fillna(0)
    logistic = Pipeline([("encode", encoder()), ("model", LogisticRegression(max_iter=5000))])
    logistic.fit(X, month["churn_label"])
    scorer = make_scorer(logistic, FEATURES, rows_of(month.head(10).fillna(0)))
    assert scorer.explainer is None and scorer.threshold is None
    with pytest.raises(LookupError, match="tree model kinds"):
        scorer.explain(rows_of(month.head(1).fillna(0)))
    assert "hist_gradient_boosting" in NOT_EXPLAINED


def test_one_batch_mixing_a_tree_model_and_another_explains_each_by_its_own(month, fitted):
    _, _, trees = fitted
    X = model_input(month, FEATURES).fillna(0)
    logistic = Pipeline([("encode", encoder()), ("model", LogisticRegression(max_iter=5000))])
    logistic.fit(X, month["churn_label"])
    other = make_scorer(logistic, FEATURES, rows_of(month.head(10).fillna(0)))
    rows = rows_of(month.head(4).fillna(0))
    answers = {}
    for position, (row, scorer) in enumerate(zip(rows, [trees, other, trees, other], strict=True)):
        loaded = LoadedModel(PRODUCTION, position % 2 + 1, scorer)
        scored = scorer.score([row])[0]
        features = UserFeatures(f"u{position}", row, [], None)
        answers[f"u{position}"] = Answer(features, PRODUCTION, loaded.version, scored, None, loaded)
    answers["absent"] = Answer(UserFeatures("absent", {}, FEATURES, None))  # not scored
    reasons = explanations(answers)
    assert set(reasons) == {"u0", "u1", "u2", "u3"}
    assert reasons["u1"] == reasons["u3"] == {"error": NOT_EXPLAINED}
    assert reasons["u0"] == explanation(trees.explain([rows[0]]), 0, rows[0])
    assert reasons["u2"] == explanation(trees.explain([rows[2]]), 0, rows[2])


def test_explanations_that_do_not_add_up_are_not_served(month, fitted, monkeypatch):
    _, pipeline, scorer = fitted
    broken = np.copy(scorer.compiled.value)
    broken[scorer.compiled.is_leaf] += 1e-6  # leaves no longer what the model computes
    monkeypatch.setattr(
        "streamflow_dagster.serving.predict.make_explainer",
        lambda compiled, features: _explainer_over(compiled, features, broken),
    )
    model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=0.3).fit(
        model_input(month, FEATURES), month["churn_label"]
    )
    assert make_scorer(model, FEATURES, rows_of(month.head(100))).explainer is None


def _explainer_over(compiled, features, value):
    from streamflow_dagster.serving.explain import make_explainer

    return make_explainer(compiled.__class__(**{**compiled.__dict__, "value": value}), features)
