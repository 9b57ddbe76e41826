"""Realized performance: a month's churn scores judged against the labels that arrived later.

AUC with its DeLong standard error (the analytic equivalent of the bootstrap s.d., in one
sort instead of hundreds of resamples), precision and lift in the top decile of scores.
Pure numpy/scipy: the realized_performance asset reads the month and reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..lib.checks import CheckOutcome

# The share of users a retention campaign contacts: the highest-scored 10%.
TOP_SHARE = 0.1
# The check compares two estimates: this month's AUC and the model's holdout AUC at training.
# Each has a standard error (this month's from DeLong, the holdout's from Hanley-McNeil and its
# size); their difference has s.e. sqrt(a^2 + b^2), and warning beyond 2 of those keeps false
# alarms from sampling noise near 2% a month (one-sided). On the demo (7,000 users, 7% churn,
# AUC ~0.8): month s.e. ~0.012, holdout (a fifth of a month) ~0.027, so the margin is ~0.06.
AUC_MARGIN_SE = 2.0
# Never closer than 0.03: below that an AUC change is not worth a person's attention, and very
# large months would otherwise shrink the margin to thousandths.
MIN_AUC_MARGIN = 0.03


@dataclass(frozen=True)
class RealizedPerformance:
    rows: int
    churned: int
    churn_rate: float
    auc: float | None  # None when the month's labels hold a single class
    auc_se: float | None
    precision_top_decile: float
    lift_top_decile: float  # precision in the top decile / churn rate


def auc_with_se(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """ROC AUC and its DeLong standard error (midranks, so ties count one half)."""
    # scipy on use: the asset module imports this one's constants when Dagster loads.
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    positives, negatives = scores[labels], scores[~labels]
    m, n = len(positives), len(negatives)
    if m == 0 or n == 0:
        raise ValueError("AUC needs both classes among the labels")
    combined = rankdata(np.concatenate([positives, negatives]))
    # Per positive: the share of negatives scored below it; per negative: positives above it.
    v10 = (combined[:m] - rankdata(positives)) / n
    v01 = 1.0 - (combined[m:] - rankdata(negatives)) / m
    auc = float(v10.mean())
    variance = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    return auc, math.sqrt(max(float(variance), 0.0))


def precision_at_top(labels: np.ndarray, scores: np.ndarray, share: float = TOP_SHARE) -> float:
    """Churn rate among the top `share` of users by score (at least one user)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.size == 0:
        return 0.0
    top = max(1, math.ceil(share * labels.size))
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return float(labels[order[:top]].mean())


def realized_performance(labels: np.ndarray, scores: np.ndarray) -> RealizedPerformance:
    labels = np.asarray(labels, dtype=bool)
    churned = int(labels.sum())
    rate = churned / labels.size if labels.size else 0.0
    auc = se = None
    if 0 < churned < labels.size:
        auc, se = auc_with_se(labels, scores)
    precision = precision_at_top(labels, scores)
    return RealizedPerformance(
        rows=int(labels.size),
        churned=churned,
        churn_rate=rate,
        auc=auc,
        auc_se=se,
        precision_top_decile=precision,
        lift_top_decile=precision / rate if rate else 0.0,
    )


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    """The s.e. of an AUC measured on that many positives and negatives (Hanley & McNeil 1982)."""
    if positives < 1 or negatives < 1:
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def auc_margin(
    auc_se: float,
    reference_se: float = 0.0,
    sds: float = AUC_MARGIN_SE,
    floor: float = MIN_AUC_MARGIN,
) -> float:
    """How far below the reference AUC a month may fall before it is more than noise."""
    return max(floor, sds * math.hypot(auc_se, reference_se))


def performance_outcome(
    performance: RealizedPerformance,
    expected_auc: float | None,
    model_version: str,
    expected_se: float = 0.0,
    sds: float = AUC_MARGIN_SE,
    floor: float = MIN_AUC_MARGIN,
) -> CheckOutcome:
    """WARN when the realized AUC is below the model's own holdout AUC by more than the margin."""
    if performance.rows == 0:
        return CheckOutcome(
            False,
            "WARN",
            "No scored user of the month has a label: the month's labels cover other users "
            "(check the user ids of labels.csv against the scored month)",
            {"rows": 0},
        )
    if performance.auc is None:
        return CheckOutcome(
            False,
            "WARN",
            f"AUC undefined: the month's {performance.rows} labels are all one class",
            {"rows": performance.rows, "churned": performance.churned},
        )
    if expected_auc is None:
        return CheckOutcome(
            False,
            "WARN",
            f"v{model_version} has no `auc` metric on its MLflow run, so there is nothing to "
            "compare with; retrain the month (churn_model) to log it",
            {"realized_auc": round(performance.auc, 4)},
        )
    month_se = performance.auc_se or 0.0
    margin = auc_margin(month_se, expected_se, sds, floor)
    drop = expected_auc - performance.auc
    metadata = {
        "realized_auc": round(performance.auc, 4),
        "expected_auc": round(expected_auc, 4),
        "auc_drop": round(drop, 4),
        "margin": round(margin, 4),
        "auc_se": round(month_se, 4),
        "expected_auc_se": round(expected_se, 4),
        "model_version": model_version,
    }
    summary = (
        f"realized AUC {performance.auc:.3f} vs v{model_version}'s holdout AUC "
        f"{expected_auc:.3f} (drop {drop:+.3f}, margin {margin:.3f} = max({floor}, {sds:g} x "
        f"s.e. {math.hypot(month_se, expected_se):.3f}))"
    )
    if drop > margin:
        return CheckOutcome(False, "WARN", f"Below expectation: {summary}", metadata)
    return CheckOutcome(True, "WARN", f"Within margin: {summary}", metadata)
