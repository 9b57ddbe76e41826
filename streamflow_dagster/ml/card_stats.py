"""The model card's figures: holdout metrics with 95% intervals, and metrics per segment.

Pure numpy/pandas. AUC's interval comes from its DeLong standard error (the analytic
equivalent of a bootstrap, monitoring/performance.py); precision, recall, accuracy and the
churn rate are proportions, so Wilson intervals (right near 0 and 1, where the normal
approximation is not); F1 is neither, so a seeded percentile bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..monitoring.performance import auc_with_se

Z95 = 1.959964  # two-sided 95%
# 1,000 resamples put the bootstrap interval's ends within about 0.005 of their limit for an
# F1 near 0.4 on ~1,400 holdout rows, and cost ~30 ms vectorized.
F1_BOOTSTRAP_RESAMPLES = 1000
# Row draws held at once by the bootstrap (8 bytes each, plus a byte per draw for the labels
# and another for the predictions): all 1,000 resamples of a 200,000-row holdout (1,000,000
# users) at once took 1.6 GB of indices: churn_model's peak memory.
BOOTSTRAP_CHUNK_DRAWS = 5_000_000
# A segment's AUC needs this many churners and non-churners: with 10 churners DeLong's s.e. is
# already ~0.08 (interval +-0.16), and below that one user moves the AUC by more than 0.01.
MIN_SEGMENT_CLASS = 10
# The attributes a card breaks metrics down by (columns of marts.subscriptions_profile_
# snapshots): who the model may serve worse (fairness) and where it is blind.
SEGMENT_COLUMNS = {
    "contract_type": "Contract type",
    "user_is_senior": "Senior citizen",
    "user_gender": "Gender",
    "net_service": "Net service",
}
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float
    method: str

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of a proportion (n = 0: the whole [0, 1])."""
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0, "Wilson")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), "Wilson")


def auc_interval(labels: np.ndarray, scores: np.ndarray, z: float = Z95) -> Interval:
    auc, se = auc_with_se(labels, scores)
    return Interval(auc, max(0.0, auc - z * se), min(1.0, auc + z * se), "DeLong")


def f1_interval(
    labels: np.ndarray,
    predicted: np.ndarray,
    seed: int,
    resamples: int = F1_BOOTSTRAP_RESAMPLES,
    chunk_draws: int = BOOTSTRAP_CHUNK_DRAWS,
) -> Interval:
    """F1 and its 95% percentile-bootstrap interval (rows resampled with replacement)."""
    labels, predicted = np.asarray(labels, bool), np.asarray(predicted, bool)
    rng = np.random.default_rng(seed)
    # A few resamples at a time: the generator's stream does not depend on how the draws are
    # cut, so the resamples (and the interval) are those of one (resamples, rows) draw.
    per_chunk = max(1, chunk_draws // max(labels.size, 1))
    f1s = []
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        index = rng.integers(0, labels.size, size=(count, labels.size))
        y, p = labels[index], predicted[index]
        true_pos = (y & p).sum(axis=1)
        denominator = y.sum(axis=1) + p.sum(axis=1)
        f1s.append(np.where(denominator > 0, 2 * true_pos / np.maximum(denominator, 1), 0.0))
    low, high = np.quantile(np.concatenate(f1s), [0.025, 0.975])
    return Interval(_f1(labels, predicted), float(low), float(high), "bootstrap")


def _f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    denominator = labels.sum() + predicted.sum()
    return float(2 * (labels & predicted).sum() / denominator) if denominator else 0.0


def metric_intervals(
    labels: np.ndarray, probability: np.ndarray, threshold: float, seed: int
) -> dict[str, Interval]:
    """Holdout AUC, precision, recall, F1, accuracy and churn rate, each with its 95% interval."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(probability, dtype=float) >= threshold
    true_pos = int((labels & predicted).sum())
    return {
        "auc": auc_interval(labels, probability),
        "precision": wilson(true_pos, int(predicted.sum())),
        "recall": wilson(true_pos, int(labels.sum())),
        "f1": f1_interval(labels, predicted, seed),
        "accuracy": wilson(int((labels == predicted).sum()), int(labels.size)),
        "churn_rate": wilson(int(labels.sum()), int(labels.size)),
    }


@dataclass(frozen=True)
class SegmentRow:
    attribute: str  # column name, e.g. contract_type
    value: str
    rows: int
    churners: int
    churn_rate: float
    mean_probability: float  # the model's predicted churn rate for the segment
    auc: Interval | None  # None: too few of one class (see note)
    note: str


def segment_metrics(
    labels: np.ndarray,
    probability: np.ndarray,
    attributes: pd.DataFrame,
    columns: dict[str, str] = SEGMENT_COLUMNS,
    min_class: int = MIN_SEGMENT_CLASS,
) -> list[SegmentRow]:
    """Per value of each attribute column: rows, churn rate, predicted rate, AUC (or why not).

    `attributes` is aligned row for row with labels and probability; a missing value is its
    own segment, "unknown".
    """
    labels = np.asarray(labels, dtype=bool)
    probability = np.asarray(probability, dtype=float)
    if len(attributes) != labels.size:
        raise ValueError(f"{len(attributes)} attribute rows for {labels.size} holdout rows")
    rows = []
    for column in columns:
        if column not in attributes.columns:
            raise KeyError(f"segment attribute {column!r} missing; have {list(attributes)}")
        values = attributes[column].astype(object).where(attributes[column].notna(), UNKNOWN)
        values = values.map(_label).to_numpy()
        for value in sorted(set(values), key=str):
            mask = values == value
            y, p = labels[mask], probability[mask]
            churners, stayers = int(y.sum()), int((~y).sum())
            enough = min(churners, stayers) >= min_class
            note = "" if enough else f"n too small ({churners} churned, {stayers} stayed)"
            rows.append(
                SegmentRow(
                    attribute=column,
                    value=str(value),
                    rows=int(mask.sum()),
                    churners=churners,
                    churn_rate=churners / mask.sum(),
                    mean_probability=float(p.mean()),
                    auc=auc_interval(y, p) if enough else None,
                    note=note,
                )
            )
    return rows


def _label(value) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return str(value)
