"""PSI, drift levels, the drift check outcome, the HTML report, and realized performance."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from streamflow_dagster.monitoring.drift import (
    ERROR_PSI,
    MISSING,
    PSI_EPSILON,
    WARN_PSI,
    categorical_drift,
    compare_months,
    drift_outcome,
    feature_drift,
    numeric_drift,
    psi,
)
from streamflow_dagster.monitoring.performance import (
    MIN_AUC_MARGIN,
    auc_margin,
    auc_with_se,
    hanley_mcneil_se,
    performance_outcome,
    precision_at_top,
    realized_performance,
)
from streamflow_dagster.monitoring.report import ReportSection, drift_report_html, write_report

RNG = np.random.default_rng(0)


def lognormal(mean: float, size: int = 5000, seed: int = 1) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).lognormal(mean, 0.5, size))


def test_identical_distributions_have_psi_near_zero():
    values = lognormal(2.9)
    assert numeric_drift("x", values, values).psi == pytest.approx(0.0, abs=1e-12)
    # Two samples of the same distribution: only sampling noise (~ bins / n).
    assert numeric_drift("x", lognormal(2.9, seed=1), lognormal(2.9, seed=2)).psi < 0.01


def test_shifted_distribution_is_flagged_like_the_demo_shift():
    # The demo's CDN change multiplies watch hours by 0.68: log-mean down by ln(0.68) = -0.39.
    drift = numeric_drift("watch_hours_30d", lognormal(2.9, seed=1), lognormal(2.51, seed=2))
    assert drift.psi > ERROR_PSI
    assert len(drift.bins) == 10 and drift.bins[0].startswith("<= ")
    assert sum(drift.reference_share) == pytest.approx(1.0)
    assert drift.reference_share[0] == pytest.approx(0.1, abs=0.01)  # decile bins
    assert drift.current_share[0] > 0.3  # a third of July's users fall in June's lowest decile


def test_psi_by_hand_and_empty_bins_use_epsilon():
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        0.25 * np.log(0.5) * -1 + 0.25 * np.log(1.5)
    )
    # A bin empty in the reference: finite, and worth (share - eps) * ln(share / eps).
    value = psi([1.0, 0.0], [0.99, 0.01])
    expected = -0.01 * np.log(0.99) + (0.01 - PSI_EPSILON) * np.log(0.01 / PSI_EPSILON)
    assert np.isfinite(value) and value == pytest.approx(expected)


def test_numeric_values_outside_the_reference_range_land_in_the_end_bins():
    reference = pd.Series(np.arange(100, dtype=float))
    current = pd.Series(np.full(100, 1000.0))
    drift = numeric_drift("x", reference, current)
    assert drift.current_share[-1] == 1.0 and drift.bins[-1].startswith("> ")
    assert drift.psi > ERROR_PSI


def test_tied_counts_collapse_bins_and_missing_values_get_their_own():
    reference = pd.Series([0] * 80 + [1] * 15 + [2] * 5, dtype=float)
    current = pd.Series([0] * 70 + [1] * 15 + [np.nan] * 15)
    drift = numeric_drift("failed_payments_90d", reference, current)
    assert drift.bins[-1] == MISSING and len(drift.bins) < 10
    assert drift.reference_share[-1] == 0.0 and drift.current_share[-1] == pytest.approx(0.15)
    assert drift.psi > WARN_PSI


def test_categorical_and_boolean_features():
    reference = pd.Series(["dsl"] * 30 + ["fiber_optic"] * 55 + ["none"] * 15)
    same = categorical_drift("net_service", reference, reference.sample(frac=1, random_state=0))
    assert same.psi == pytest.approx(0.0) and same.kind == "categorical"
    moved = categorical_drift(
        "net_service", reference, pd.Series(["dsl"] * 10 + ["fiber_optic"] * 90)
    )
    assert moved.psi > ERROR_PSI
    assert moved.bins == ("dsl", "fiber_optic", "none") and moved.current_share[2] == 0.0
    # Booleans (with a missing value, as Arrow hands them over: object dtype) are categorical.
    flags = feature_drift(
        "paperless_billing",
        pd.Series([True] * 60 + [False] * 40),
        pd.Series([True] * 59 + [False] * 40 + [None], dtype=object),
    )
    assert flags.kind == "categorical" and flags.bins == (MISSING, "false", "true")
    assert flags.psi < WARN_PSI


def comparison(current_mean: float):
    reference = pd.DataFrame({"hours": lognormal(2.9, seed=1), "plan": ["a", "b"] * 2500})
    current = pd.DataFrame({"hours": lognormal(current_mean, seed=2), "plan": ["a", "b"] * 2500})
    return (
        compare_months(
            reference,
            current,
            ["plan", "hours"],
            reference_label="previous month",
            reference_as_of="2024-06-30",
            current_as_of="2024-07-31",
        ),
        reference,
        current,
    )


def test_drift_outcome_levels():
    stable, _, _ = comparison(2.9)
    assert stable.level == "stable" and drift_outcome(stable, "").passed
    moderate = drift_outcome(comparison(2.7)[0], "")
    assert (moderate.passed, moderate.severity) == (False, "WARN")
    major, _, _ = comparison(2.51)
    assert major.features[0].feature == "hours"  # most drifted first
    outcome = drift_outcome(major, "")
    assert (outcome.passed, outcome.severity) == (False, "ERROR")
    assert (
        outcome.metadata["max_psi"] > ERROR_PSI
        and "hours" in outcome.metadata["features_over_warn"]
    )
    assert "2024-06-30" in outcome.description and "major" in outcome.description
    # 10 bins, 5,000 users a month: sampling alone gives about 9 * 2 / 5000.
    assert outcome.metadata["sampling_noise_psi"] == pytest.approx(0.0036)
    first = drift_outcome(None, "no reference month: 2024-01-31 is the first landed month")
    assert first.passed and "no reference month" in first.description


def test_compare_months_names_missing_features():
    reference = pd.DataFrame({"hours": [1.0, 2.0]})
    with pytest.raises(KeyError, match="plan"):
        compare_months(
            reference,
            reference,
            ["hours", "plan"],
            reference_label="previous month",
            reference_as_of="a",
            current_as_of="b",
        )


def test_report_is_self_contained_html(tmp_path):
    major, reference, current = comparison(2.51)
    page = drift_report_html("2024-07-31", [ReportSection(major, reference, current)], ["note"])
    path = write_report(tmp_path / "reports" / "2024-07-31.html", page)
    text = path.read_text()
    assert text.startswith("<!doctype html>") and "Feature drift for 2024-07-31" in text
    assert text.count("data:image/png;base64,") == 3  # PSI bars + both features' plots
    assert "<td>hours</td>" in text and "major" in text
    assert "src='http" not in text and not list(path.parent.glob("*.tmp"))


# --- realized performance ---------------------------------------------------------------------


def labelled_scores(n: int = 4000, rate: float = 0.07, signal: float = 1.5, seed: int = 3):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < rate
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + signal * labels - 2.5)))
    return labels, scores


def test_auc_and_delong_se_agree_with_sklearn_and_the_bootstrap():
    labels, scores = labelled_scores()
    auc, se = auc_with_se(labels, scores)
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    rng = np.random.default_rng(5)
    boot = []
    for _ in range(300):
        pick = rng.integers(0, len(labels), len(labels))
        boot.append(roc_auc_score(labels[pick], scores[pick]))
    assert se == pytest.approx(np.std(boot), rel=0.2)
    # Ties count one half, as sklearn counts them.
    tied = np.round(scores, 1)
    assert auc_with_se(labels, tied)[0] == pytest.approx(roc_auc_score(labels, tied))


def test_hanley_mcneil_se_and_the_margin_on_the_demo_scale():
    labels, scores = labelled_scores(n=7000)
    auc, delong = auc_with_se(labels, scores)
    positives = int(labels.sum())
    approx = hanley_mcneil_se(auc, positives, len(labels) - positives)
    assert delong <= approx < 1.5 * delong  # an approximation, on the cautious side here
    # The demo: a 7,000-user month (s.e. ~0.012) against a 1,400-user holdout (~0.027).
    month, holdout = hanley_mcneil_se(0.8, 490, 6510), hanley_mcneil_se(0.8, 98, 1302)
    assert 0.01 < month < 0.014 and 0.024 < holdout < 0.03
    assert 0.05 < auc_margin(month, holdout) < 0.07
    assert auc_margin(0.001) == MIN_AUC_MARGIN  # huge months: the floor


def test_precision_at_top_decile_and_lift():
    labels = np.array([True] * 10 + [False] * 90)
    scores = np.linspace(1, 0, 100)  # the churners have the highest scores
    assert precision_at_top(labels, scores) == 1.0
    performance = realized_performance(labels, scores)
    assert performance.auc == pytest.approx(1.0) and performance.churn_rate == 0.1
    assert performance.lift_top_decile == pytest.approx(10.0)


def test_performance_outcome_warns_below_margin_only():
    labels, scores = labelled_scores()
    performance = realized_performance(labels, scores)
    within = performance_outcome(performance, performance.auc + 0.01, "4")
    assert within.passed and within.metadata["margin"] >= MIN_AUC_MARGIN
    below = performance_outcome(performance, performance.auc + 0.1, "4", expected_se=0.02)
    assert (below.passed, below.severity) == (False, "WARN")
    assert below.metadata["auc_drop"] == pytest.approx(0.1, abs=1e-4)
    assert below.metadata["margin"] == pytest.approx(2 * np.hypot(performance.auc_se, 0.02), 1e-3)
    single_class = realized_performance(np.zeros(50, dtype=bool), np.linspace(0, 1, 50))
    assert single_class.auc is None
    assert not performance_outcome(single_class, 0.8, "4").passed
