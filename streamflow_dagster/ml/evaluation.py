"""Holdout metrics, the decision threshold, permutation importances: arrays in, numbers out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from .threads import openmp_limited

# Shuffles per feature for the importances: 3 keeps the plot stable to the second decimal
# while costing 42 predictions of the holdout (well under a second).
IMPORTANCE_REPEATS = 3
# Holdout rows the importances are measured on, at most: every row up to this many (the
# demo months' holdouts are ~1,400), else this many drawn with the seed. 42 predictions of a
# 200,000-row holdout (1,000,000 users) cost more than the fit; on 50,000 rows (~3,500
# churners) a feature's AUC drop is still measured to about +-0.005 (paired shuffles of the
# same rows), which is what the plot shows (two decimals).
IMPORTANCE_ROWS = 50_000
# Permuted copies of the holdout are predicted together, up to this many rows per call: one
# forest prediction of 100,000 rows costs about what one of 1,400 rows does, mostly per-tree
# overhead, so the ~40-80 copies of a demo month's holdout cost one call instead of 40-80.
IMPORTANCE_BATCH_ROWS = 200_000


def choose_threshold(y_true: np.ndarray, churn_probability: np.ndarray) -> float:
    """The probability cut-off with the best F1 on these (validation) rows.

    Churners are ~7% of users, so 0.5 flags almost nobody (the seed's F1 of 0.08); the
    cut-off that balances precision and recall on validation rows is the one to ship.
    """
    precision, recall, thresholds = precision_recall_curve(y_true, churn_probability)
    # The last (precision, recall) pair has no threshold: it is the "predict nobody" point.
    precision, recall = precision[:-1], recall[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def holdout_metrics(
    y_true: np.ndarray, churn_probability: np.ndarray, threshold: float
) -> dict[str, float]:
    """AUC, log loss and the thresholded metrics (prediction = probability >= threshold)."""
    predicted = churn_probability >= threshold
    return {
        "auc": float(roc_auc_score(y_true, churn_probability)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "log_loss": float(log_loss(y_true, churn_probability, labels=[False, True])),
        "predicted_churn_rate": float(predicted.mean()),
        "churn_rate": float(np.mean(y_true)),
    }


def feature_importances(model, X: pd.DataFrame, y: np.ndarray, seed: int) -> pd.Series:
    """Drop in holdout AUC when each raw feature is shuffled (largest first).

    Computed on the raw features through the whole pipeline, so net_service counts once and
    both candidate model types are measured the same way. Holdouts over IMPORTANCE_ROWS are
    measured on that many of their rows, drawn with `seed`.
    """
    if len(X) > IMPORTANCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), IMPORTANCE_ROWS, replace=False))
        X, y = X.iloc[rows], y[rows]
    with openmp_limited():
        drops = permutation_auc_drops(model, X, y, seed, IMPORTANCE_REPEATS)
    importances = pd.Series(drops, index=list(X.columns), name="auc_drop")
    return importances.sort_values(ascending=False, kind="stable")


def permutation_auc_drops(model, X: pd.DataFrame, y: np.ndarray, seed: int, repeats: int):
    """`sklearn.inspection.permutation_importance(model, X, y, scoring="roc_auc",
    n_repeats=repeats, random_state=seed).importances_mean`, exactly (the same shuffles, the
    same scores), with the permuted copies predicted in batches instead of one call each.

    As scikit-learn does: one seed drawn from `seed` restarts the shuffles for each feature,
    and each repeat shuffles the already shuffled column again.
    """
    feature_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    baseline = roc_auc_score(y, _auc_response(model, X))
    drops = np.zeros((X.shape[1], repeats))
    per_batch = max(1, IMPORTANCE_BATCH_ROWS // max(len(X), 1))
    pending: list[tuple[int, int, pd.DataFrame]] = []  # (feature position, repeat, copy)

    def score(batch: list[tuple[int, int, pd.DataFrame]]) -> None:
        response = _auc_response(model, pd.concat([c for *_, c in batch], ignore_index=True))
        for offset, (position, repeat, _) in enumerate(batch):
            scores = response[offset * len(X) : (offset + 1) * len(X)]
            drops[position, repeat] = baseline - roc_auc_score(y, scores)

    for position, name in enumerate(X.columns):
        shuffles, shuffling = np.random.RandomState(feature_seed), np.arange(len(X))
        permuted = X.copy()
        for repeat in range(repeats):
            shuffles.shuffle(shuffling)
            column = permuted[name].iloc[shuffling]
            column.index = permuted.index
            permuted[name] = column
            pending.append((position, repeat, permuted.copy()))
            if len(pending) == per_batch:
                score(pending)
                pending = []
    if pending:
        score(pending)
    return drops.mean(axis=1)


def _auc_response(model, X: pd.DataFrame) -> np.ndarray:
    """What scikit-learn's "roc_auc" scorer ranks: decision_function if the model has one,
    else the positive class's probability."""
    if hasattr(model, "decision_function"):
        return model.decision_function(X)
    return model.predict_proba(X)[:, 1]


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    churn_probability: np.ndarray  # of the holdout rows
    importances: pd.Series


def evaluate(
    model, X_holdout: pd.DataFrame, y_holdout: np.ndarray, threshold: float, seed: int
) -> Evaluation:
    """The model on its holdout: metrics at its threshold and permutation importances."""
    with openmp_limited():
        probability = model.predict_proba(X_holdout)[:, 1]
    return Evaluation(
        metrics=holdout_metrics(y_holdout, probability, threshold),
        churn_probability=probability,
        importances=feature_importances(model, X_holdout, y_holdout, seed),
    )
