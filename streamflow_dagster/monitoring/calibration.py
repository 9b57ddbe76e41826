"""Calibration of a month's churn scores once its labels land: predicted vs realized churn rate,
Brier score, and a reliability curve (equal-count bins of users sorted by score).

A ranking can stay good while its probabilities drift (the demo's July: AUC still fine, a
predicted churn rate of 15.6% against 7.1% realized); a retention budget is planned on the
probabilities, so they are watched on their own. Pure numpy: the asset reads and reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..lib.checks import CheckOutcome

# Ten bins of a tenth of the users each: deciles, as retention teams read scores. Equal-width
# bins would put nearly every user of a 7%-churn month into the first bin.
RELIABILITY_BINS = 10
# The check's bound on |predicted rate - realized rate|. If the scores are calibrated, each
# user churns with their own probability p_i, so the month's churn count has mean sum(p_i) and
# variance sum(p_i (1 - p_i)) (a Poisson-binomial): the realized rate's standard error is
# sqrt(sum p_i (1 - p_i)) / n. Beyond 3 of those, a gap happens by chance in ~0.3% of
# calibrated months (two-sided), under one false alarm in the demo's 12 months of every check.
CALIBRATION_MARGIN_SE = 3.0
# Never closer than one percentage point: on a 100,000-user month 3 s.e. is ~0.25 points, and a
# gap that small does not change how many customers a retention campaign plans for.
MIN_RATE_GAP = 0.01


@dataclass(frozen=True)
class ReliabilityBin:
    users: int
    mean_predicted: float
    realized_rate: float
    low: float  # the lowest and highest score in the bin
    high: float


@dataclass(frozen=True)
class Calibration:
    rows: int
    predicted_rate: float  # mean score: the churn rate the scores predicted
    realized_rate: float
    rate_se: float  # the realized rate's s.e. if the scores were calibrated
    brier: float  # mean (p - y)^2
    expected_brier: float  # mean p (1 - p): the Brier a calibrated model would score on average
    bins: tuple[ReliabilityBin, ...]

    @property
    def rate_gap(self) -> float:
        return self.predicted_rate - self.realized_rate

    @property
    def max_bin_gap(self) -> float:
        return max((abs(b.mean_predicted - b.realized_rate) for b in self.bins), default=0.0)


def reliability_bins(
    labels: np.ndarray, scores: np.ndarray, bins: int = RELIABILITY_BINS
) -> tuple[ReliabilityBin, ...]:
    """Users sorted by score (stable), cut into `bins` groups of equal size (the first groups
    take one more user when the count does not divide): mean score and churn rate of each."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, labels.size)) if g.size]
    return tuple(
        ReliabilityBin(
            users=int(g.size),
            mean_predicted=float(scores[g].mean()),
            realized_rate=float(labels[g].mean()),
            low=float(scores[g].min()),
            high=float(scores[g].max()),
        )
        for g in groups
    )


def calibration(
    labels: np.ndarray, scores: np.ndarray, bins: int = RELIABILITY_BINS
) -> Calibration:
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    if labels.size == 0:
        raise ValueError("calibration needs at least one scored user with a label")
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels for {scores.size} scores")
    spread = scores * (1.0 - scores)
    return Calibration(
        rows=int(labels.size),
        predicted_rate=float(scores.mean()),
        realized_rate=float(labels.mean()),
        rate_se=math.sqrt(float(spread.sum())) / labels.size,
        brier=float(np.mean((scores - labels) ** 2)),
        expected_brier=float(spread.mean()),
        bins=reliability_bins(labels, scores, bins),
    )


def rate_margin(rate_se: float, sds: float = CALIBRATION_MARGIN_SE, floor: float = MIN_RATE_GAP):
    return max(floor, sds * rate_se)


def calibration_outcome(
    result: Calibration,
    model_version: str,
    sds: float = CALIBRATION_MARGIN_SE,
    floor: float = MIN_RATE_GAP,
) -> CheckOutcome:
    """WARN when the predicted churn rate misses the realized one by more than the margin."""
    margin = rate_margin(result.rate_se, sds, floor)
    gap = result.rate_gap
    metadata = {
        "predicted_churn_rate": round(result.predicted_rate, 4),
        "realized_churn_rate": round(result.realized_rate, 4),
        "rate_gap": round(gap, 4),
        "margin": round(margin, 4),
        "rate_se": round(result.rate_se, 4),
        "brier": round(result.brier, 4),
        "expected_brier_if_calibrated": round(result.expected_brier, 4),
        "max_bin_gap": round(result.max_bin_gap, 4),
        "rows": result.rows,
        "model_version": model_version,
    }
    direction = "over" if gap > 0 else "under"
    summary = (
        f"v{model_version}'s scores predicted a churn rate of {result.predicted_rate:.1%}, "
        f"{result.realized_rate:.1%} churned (gap {gap * 100:+.1f} points, margin "
        f"{margin * 100:.1f} = max({floor * 100:g}, {sds:g} x s.e. {result.rate_se * 100:.2f}) "
        f"points); Brier {result.brier:.4f} vs {result.expected_brier:.4f} if calibrated"
    )
    if abs(gap) > margin:
        return CheckOutcome(
            False,
            "WARN",
            f"Miscalibrated ({direction}-predicting churn): {summary}. Read the reliability "
            "curve; retrain on a recent month or recalibrate before planning on these "
            "probabilities",
            metadata,
        )
    return CheckOutcome(True, "WARN", f"Calibrated within margin: {summary}", metadata)
