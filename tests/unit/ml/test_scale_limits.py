"""The limits that keep a million-user month fast leave smaller months exactly as they were."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression

from streamflow_dagster.ml import evaluation
from streamflow_dagster.ml.evaluation import feature_importances
from streamflow_dagster.ml.training import (
    FOREST_ROWS_PER_TREE,
    HIST_GRADIENT_BOOSTING_PARAMS,
    candidates,
    forest_max_samples,
)


def test_forest_trees_draw_every_row_up_to_the_limit_and_the_limit_beyond():
    assert forest_max_samples(None) is None
    assert forest_max_samples(FOREST_ROWS_PER_TREE) is None
    share = forest_max_samples(6 * FOREST_ROWS_PER_TREE)
    assert share is not None and round(share * 6 * FOREST_ROWS_PER_TREE) == FOREST_ROWS_PER_TREE
    assert candidates(42, train_rows=4_200)["random_forest"]["model"].max_samples is None
    assert candidates(42, train_rows=600_000)["random_forest"]["model"].max_samples == share
    boosting = candidates(42, train_rows=600_000)["hist_gradient_boosting"]["model"]
    assert boosting.get_params()["max_iter"] == HIST_GRADIENT_BOOSTING_PARAMS["max_iter"]


def _frame(rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"signal": rng.normal(size=rows), "noise": rng.normal(size=rows)})
    y = (X["signal"] + 0.5 * rng.normal(size=rows)) > 1.0
    return X, y.to_numpy()


def test_importances_use_a_seeded_sample_of_a_large_holdout_and_every_row_of_a_small_one(
    monkeypatch,
):
    X, y = _frame(600)
    model = LogisticRegression().fit(X, y)
    whole = feature_importances(model, X, y, seed=5)
    direct = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=3, random_state=5)
    assert np.allclose(whole[["signal", "noise"]].to_numpy(), direct.importances_mean)

    monkeypatch.setattr(evaluation, "IMPORTANCE_ROWS", 200)
    sampled = feature_importances(model, X, y, seed=5)
    rows = np.sort(np.random.default_rng(5).choice(600, 200, replace=False))
    expected = permutation_importance(
        model, X.iloc[rows], y[rows], scoring="roc_auc", n_repeats=3, random_state=5
    )
    assert np.allclose(sampled[["signal", "noise"]].to_numpy(), expected.importances_mean)
    assert not np.allclose(sampled["signal"], whole["signal"])  # it did measure other rows
    assert sampled["signal"] > 0.1 > abs(sampled["noise"])
