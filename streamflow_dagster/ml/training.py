"""Training one month: two candidate pipelines, the better on validation, its threshold.

The pipeline encodes its categorical features itself (net_service; contract_type too for
churn_v2), so the registered model takes its feature service's raw features.
The chosen pipeline is frozen inside a FixedThresholdClassifier: `predict` applies the
validation-chosen threshold and `predict_proba` gives the churn probability.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from .dataset import CATEGORICAL_FEATURES, SEED, Holdout, Split, split_month
from .evaluation import choose_threshold
from .threads import FOREST_FIT_JOBS, openmp_limited

# 100 trees of depth <= 8 with >= 20 users per leaf: on the demo months this matches 200
# deeper trees on validation AUC (within 0.003) at a quarter of the size, which is what
# skops serialization time (~1 s per 5 MB) and scoring a million users cost.
RANDOM_FOREST_PARAMS = {
    "n_estimators": 100,
    "max_depth": 8,
    "min_samples_leaf": 20,
    "max_features": "sqrt",
}
# Rows each forest tree draws (its bootstrap sample) at most. Up to this many training rows
# every tree draws as many rows as there are (scikit-learn's default: the model is the same
# as without the limit); beyond it a tree draws this many, so fitting stops growing with
# the month (600,000 training rows at 1,000,000 users: 100 trees on 600,000 rows each took
# most of a month's run). 100 trees of 100,000 rows still leave no training row unseen
# (each row is missed by a tree with probability 5/6, by all 100 with ~1e-8).
FOREST_ROWS_PER_TREE = 100_000
# Shallow trees, a fixed 150 rounds at rate 0.05: churn here is close to additive in the
# features, and a fixed number of rounds keeps every row for training (early stopping would
# hold out 10% more) and makes the fit a deterministic 0.1-0.3 s.
HIST_GRADIENT_BOOSTING_PARAMS = {
    "learning_rate": 0.05,
    "max_iter": 150,
    "max_depth": 3,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "early_stopping": False,
}


def candidates(
    seed: int, features: list[str] | None = None, train_rows: int | None = None
) -> dict[str, Pipeline]:
    """The candidate pipelines, in the order that breaks a validation tie.

    `features`: the model's inputs, which say which categorical columns the pipeline encodes
    (None: net_service only, the churn_v1 model's one categorical feature).
    """
    models = {
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            **HIST_GRADIENT_BOOSTING_PARAMS, random_state=seed
        ),
        "random_forest": RandomForestClassifier(
            **RANDOM_FOREST_PARAMS, max_samples=forest_max_samples(train_rows), random_state=seed
        ),
    }
    return {
        name: Pipeline([("encode", encoder(features)), ("model", m)]) for name, m in models.items()
    }


def forest_max_samples(train_rows: int | None) -> float | None:
    """The forest's `max_samples`: None (every row) up to FOREST_ROWS_PER_TREE rows."""
    if train_rows is None or train_rows <= FOREST_ROWS_PER_TREE:
        return None
    return FOREST_ROWS_PER_TREE / train_rows


def encoder(features: list[str] | None = None) -> ColumnTransformer:
    """One-hot the categorical features over the contract's values; the rest pass through."""
    names = (
        ["net_service"] if features is None else [n for n in CATEGORICAL_FEATURES if n in features]
    )
    return ColumnTransformer(
        [
            (
                # The step's name since churn_v1, kept: it also encodes contract_type in churn_v2.
                "net_service",
                OneHotEncoder(
                    categories=[list(CATEGORICAL_FEATURES[n]) for n in names],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
                names,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )


@dataclass
class TrainedModel:
    model: FixedThresholdClassifier  # the chosen pipeline + threshold
    algorithm: str
    threshold: float
    features: list[str]
    split: Holdout  # the holdout rows and the split's row counts (train rows are not kept)
    seed: int
    validation_auc: dict[str, float]  # per candidate
    fit_seconds: dict[str, float]  # per candidate
    train_seconds: float  # split, both fits, selection, threshold
    params: dict[str, object] = field(default_factory=dict)

    def churn_probability(self, X: pd.DataFrame) -> np.ndarray:
        with openmp_limited():
            return self.model.predict_proba(X)[:, 1]


def train(training_set: pd.DataFrame, features: list[str], seed: int = SEED) -> TrainedModel:
    """Fit both candidates on the train rows; keep the better by validation AUC."""
    started = time.perf_counter()
    split = split_month(training_set, features, seed)
    validation_auc, fit_seconds, fitted, val_probability = {}, {}, {}, {}
    with openmp_limited(), joblib.parallel_config(backend="threading", n_jobs=FOREST_FIT_JOBS):
        for name, pipeline in candidates(seed, list(features), len(split.y_train)).items():
            fit_started = time.perf_counter()
            fitted[name] = pipeline.fit(split.X_train, split.y_train)
            fit_seconds[name] = time.perf_counter() - fit_started
    with openmp_limited():
        for name, pipeline in fitted.items():
            val_probability[name] = pipeline.predict_proba(split.X_val)[:, 1]
            validation_auc[name] = float(roc_auc_score(split.y_val, val_probability[name]))
    best = max(validation_auc, key=validation_auc.get)  # first listed wins a tie
    threshold = choose_threshold(split.y_val, val_probability[best])
    model = FixedThresholdClassifier(
        FrozenEstimator(fitted[best]), threshold=threshold, response_method="predict_proba"
    ).fit(split.X_train, split.y_train)  # frozen: fit only records the classes
    return TrainedModel(
        model=model,
        algorithm=best,
        threshold=threshold,
        features=list(features),
        split=split.holdout(),
        seed=seed,
        validation_auc=validation_auc,
        fit_seconds=fit_seconds,
        train_seconds=time.perf_counter() - started,
        params=_params(best, seed, threshold, split, fitted[best]),
    )


def _params(
    algorithm: str, seed: int, threshold: float, split: Split, pipeline: Pipeline
) -> dict[str, object]:
    chosen = RANDOM_FOREST_PARAMS if algorithm == "random_forest" else HIST_GRADIENT_BOOSTING_PARAMS
    if algorithm == "random_forest" and pipeline["model"].max_samples is not None:
        chosen = {**chosen, "max_samples": round(pipeline["model"].max_samples, 6)}
    return {
        "algorithm": algorithm,
        "seed": seed,
        "threshold": round(threshold, 6),
        **{f"model.{key}": value for key, value in chosen.items()},
        **{f"rows.{part}": rows for part, rows in split.rows.items()},
    }
