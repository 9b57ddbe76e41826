"""Feature drift between two months: the Population Stability Index (PSI) of every feature.

PSI = sum over bins of (current share - reference share) * ln(current share / reference share).
Numeric features are cut at the reference month's quantiles, so each bin holds about the same
share of the reference; categorical and boolean features use one bin per value. Missing values
get a bin of their own, so a feature that starts arriving empty drifts too.

Pure numpy/pandas: the drift asset reads the months and reports; this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..lib.checks import CheckOutcome
from ..ml.registry_names import FEATURE_SERVICE_TAG

# Quantile bins of a numeric feature: deciles, the convention the PSI thresholds below were
# calibrated with. Tied values (counts such as failed_payments_90d, mostly 0) merge bins.
NUMERIC_BINS = 10
# Share given to a bin that is empty in one month: ln(0) would make PSI infinite. 1e-4 is the
# usual choice; a bin going from empty to 1% of users then adds 0.045, noticeable not absurd.
PSI_EPSILON = 1e-4
# The conventional PSI bands (Siddiqi, "Credit Risk Scorecards"; used across model monitoring):
# below 0.1 the population is stable, 0.1-0.25 moderate shift (look at it), above 0.25 major
# shift (the model sees a population it was not trained on). On the demo data stable months
# stay below 0.04 and the degraded-streaming month reaches about 0.45 on watch hours.
WARN_PSI = 0.1
ERROR_PSI = 0.25
MISSING = "(missing)"

STABLE, MODERATE, MAJOR = "stable", "moderate", "major"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" or "categorical"
    psi: float
    bins: tuple[str, ...]  # bin labels, e.g. "(12.5, 20.1]" or "fiber_optic"
    reference_share: tuple[float, ...]
    current_share: tuple[float, ...]


@dataclass(frozen=True)
class DriftComparison:
    """Every feature of the current month against one reference month, most drifted first."""

    reference: str  # what the reference is, e.g. "previous month"
    reference_as_of: str
    current_as_of: str
    reference_rows: int
    current_rows: int
    features: tuple[FeatureDrift, ...]

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features), default=0.0)

    @property
    def level(self) -> str:
        return drift_level(self.max_psi)


def watched_service(model_tags: dict | None, default_service: str) -> str:
    """The feature service whose features drift is measured on: the one the month's
    Production model was trained with (its `feature_service` tag), else `default_service`
    (no model yet, or a version registered before models named their service)."""
    return (model_tags or {}).get(FEATURE_SERVICE_TAG) or default_service


def psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (empty bins get PSI_EPSILON)."""
    reference = np.maximum(np.asarray(reference_share, dtype=float), PSI_EPSILON)
    current = np.maximum(np.asarray(current_share, dtype=float), PSI_EPSILON)
    return float(np.sum((current - reference) * np.log(current / reference)))


def drift_level(value: float, warn: float = WARN_PSI, error: float = ERROR_PSI) -> str:
    if value >= error:
        return MAJOR
    return MODERATE if value >= warn else STABLE


def is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def quantile_edges(reference: np.ndarray, bins: int = NUMERIC_BINS) -> np.ndarray:
    """Inner cut points at the reference's quantiles; ties collapse into fewer bins."""
    if reference.size == 0:
        return np.empty(0)
    inner = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def numeric_drift(
    name: str, reference: pd.Series, current: pd.Series, bins: int = NUMERIC_BINS
) -> FeatureDrift:
    ref = pd.to_numeric(reference).to_numpy(dtype=float, na_value=np.nan)
    cur = pd.to_numeric(current).to_numpy(dtype=float, na_value=np.nan)
    edges = quantile_edges(ref[~np.isnan(ref)], bins)
    labels = _interval_labels(edges)
    # Bin i is (edge[i-1], edge[i]]: right-closed, so a tied value sits with the values below.
    ref_counts = np.bincount(np.searchsorted(edges, ref[~np.isnan(ref)]), minlength=len(labels))
    cur_counts = np.bincount(np.searchsorted(edges, cur[~np.isnan(cur)]), minlength=len(labels))
    ref_missing, cur_missing = int(np.isnan(ref).sum()), int(np.isnan(cur).sum())
    if ref_missing or cur_missing:
        labels.append(MISSING)
        ref_counts = np.append(ref_counts, ref_missing)
        cur_counts = np.append(cur_counts, cur_missing)
    return _drift(name, "numeric", labels, ref_counts, cur_counts)


def categorical_drift(name: str, reference: pd.Series, current: pd.Series) -> FeatureDrift:
    ref, cur = _category_text(reference), _category_text(current)
    labels = sorted(set(ref.unique()) | set(cur.unique()))
    ref_counts = ref.value_counts().reindex(labels, fill_value=0).to_numpy()
    cur_counts = cur.value_counts().reindex(labels, fill_value=0).to_numpy()
    return _drift(name, "categorical", labels, ref_counts, cur_counts)


def feature_drift(
    name: str, reference: pd.Series, current: pd.Series, bins: int = NUMERIC_BINS
) -> FeatureDrift:
    """Numeric when the reference month's column is numeric (not boolean), else categorical."""
    if is_numeric(reference) and is_numeric(current):
        return numeric_drift(name, reference, current, bins)
    return categorical_drift(name, reference, current)


def compare_months(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    reference_label: str,
    reference_as_of: str,
    current_as_of: str,
    bins: int = NUMERIC_BINS,
) -> DriftComparison:
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise KeyError(f"Features missing from the months' columns: {missing}")
    drifts = [feature_drift(f, reference[f], current[f], bins) for f in features]
    return DriftComparison(
        reference=reference_label,
        reference_as_of=reference_as_of,
        current_as_of=current_as_of,
        reference_rows=len(reference),
        current_rows=len(current),
        features=tuple(sorted(drifts, key=lambda d: d.psi, reverse=True)),
    )


def sampling_noise_psi(drift: FeatureDrift, comparison: DriftComparison) -> float:
    """Expected PSI of two samples of one distribution: (bins - 1) * (1/n_ref + 1/n_cur)."""
    rows = (comparison.reference_rows, comparison.current_rows)
    if min(rows) == 0:
        return 0.0
    return (len(drift.bins) - 1) * (1 / rows[0] + 1 / rows[1])


def drift_outcome(
    comparison: DriftComparison | None,
    no_reference_reason: str,
    warn: float = WARN_PSI,
    error: float = ERROR_PSI,
) -> CheckOutcome:
    """WARN at `warn`, ERROR at `error` (max PSI over the features); passes without reference."""
    thresholds = {"warn_psi": warn, "error_psi": error}
    if comparison is None:
        return CheckOutcome(True, "WARN", f"Nothing to compare: {no_reference_reason}", thresholds)
    top = comparison.features[0] if comparison.features else None
    over_warn = {f.feature: round(f.psi, 4) for f in comparison.features if f.psi >= warn}
    level = drift_level(comparison.max_psi, warn, error)
    metadata = {
        **thresholds,
        "max_psi": round(comparison.max_psi, 4),
        "reference_as_of": comparison.reference_as_of,
        "features_over_warn": over_warn,
        # What sampling alone gives the top feature with no change at all; the bands assume it
        # is small (thousands of users). Hundreds of users make it comparable to WARN_PSI.
        "sampling_noise_psi": round(sampling_noise_psi(top, comparison), 4) if top else 0.0,
    }
    summary = (
        f"{comparison.current_as_of} vs {comparison.reference} {comparison.reference_as_of}: "
        f"max PSI {comparison.max_psi:.3f}" + (f" ({top.feature})" if top else "")
    )
    if level == STABLE:
        return CheckOutcome(True, "WARN", f"{summary}, stable (< {warn})", metadata)
    severity = "ERROR" if level == MAJOR else "WARN"
    bound = f">= {error}" if level == MAJOR else f">= {warn}"
    drifted = ", ".join(f"{name} {value:.3f}" for name, value in over_warn.items())
    return CheckOutcome(False, severity, f"{summary}, {level} drift ({bound}): {drifted}", metadata)


def _drift(
    name: str, kind: str, labels: list[str], ref_counts: np.ndarray, cur_counts: np.ndarray
) -> FeatureDrift:
    ref_share = ref_counts / max(int(ref_counts.sum()), 1)
    cur_share = cur_counts / max(int(cur_counts.sum()), 1)
    return FeatureDrift(
        feature=name,
        kind=kind,
        psi=psi(ref_share, cur_share),
        bins=tuple(labels),
        reference_share=tuple(float(s) for s in ref_share),
        current_share=tuple(float(s) for s in cur_share),
    )


def _interval_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all values"]
    cuts = [f"{edge:.4g}" for edge in edges]
    inner = [f"({low}, {high}]" for low, high in zip(cuts[:-1], cuts[1:], strict=True)]
    return [f"<= {cuts[0]}", *inner, f"> {cuts[-1]}"]


def _category_text(values: pd.Series) -> pd.Series:
    """Values as text labels; None/NaN become the missing bin (True and 'true' are the same)."""
    text = values.map(lambda v: MISSING if pd.isna(v) else str(v).lower())
    return text.astype(object)
