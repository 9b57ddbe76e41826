"""Calibration figures against a hand computation, the check's margin, and the report."""

import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from streamflow_dagster.monitoring.calibration import (
    MIN_RATE_GAP,
    calibration,
    calibration_outcome,
    rate_margin,
    reliability_bins,
)
from streamflow_dagster.monitoring.calibration_report import (
    calibration_report_html,
    reliability_png,
    reliability_table_md,
)

# Four users; by hand:
#   predicted rate (0.1 + 0.4 + 0.2 + 0.8) / 4 = 0.375, realized 2 / 4 = 0.5
#   Brier ((0.1-0)^2 + (0.4-1)^2 + (0.2-0)^2 + (0.8-1)^2) / 4 = (0.01+0.36+0.04+0.04) / 4 = 0.1125
#   p(1-p): 0.09, 0.24, 0.16, 0.16 -> sum 0.65, mean 0.1625; rate s.e. sqrt(0.65) / 4
#   two bins by score: {0.1, 0.2} (no churner), {0.4, 0.8} (both churned)
SCORES = np.array([0.1, 0.4, 0.2, 0.8])
LABELS = np.array([False, True, False, True])


def test_calibration_figures_match_the_hand_computation():
    result = calibration(LABELS, SCORES, bins=2)
    assert result.rows == 4
    assert result.predicted_rate == pytest.approx(0.375)
    assert result.realized_rate == pytest.approx(0.5)
    assert result.rate_gap == pytest.approx(-0.125)
    assert result.brier == pytest.approx(0.1125)
    assert result.brier == pytest.approx(brier_score_loss(LABELS, SCORES))
    assert result.expected_brier == pytest.approx(0.1625)
    assert result.rate_se == pytest.approx(math.sqrt(0.65) / 4)
    low, high = result.bins
    assert (low.users, low.mean_predicted, low.realized_rate) == (2, pytest.approx(0.15), 0.0)
    assert (low.low, low.high) == (0.1, 0.2)
    assert (high.users, high.mean_predicted, high.realized_rate) == (2, pytest.approx(0.6), 1.0)
    assert result.max_bin_gap == pytest.approx(0.4)


def test_reliability_bins_are_equal_count_with_the_remainder_first():
    scores = np.array([0.5, 0.1, 0.3, 0.2, 0.4])
    labels = np.array([1, 0, 0, 0, 1], dtype=bool)
    bins = reliability_bins(labels, scores, bins=2)
    # sorted: 0.1(0) 0.2(0) 0.3(0) | 0.4(1) 0.5(1)
    assert [b.users for b in bins] == [3, 2]
    assert bins[0].mean_predicted == pytest.approx(0.2) and bins[0].realized_rate == 0.0
    assert bins[1].mean_predicted == pytest.approx(0.45) and bins[1].realized_rate == 1.0
    # More bins than users: one user a bin, none empty.
    assert [b.users for b in reliability_bins(labels, scores, bins=10)] == [1] * 5


def test_calibration_rejects_empty_or_mismatched_input():
    with pytest.raises(ValueError, match="at least one"):
        calibration(np.array([], dtype=bool), np.array([]))
    with pytest.raises(ValueError, match="3 labels for 2 scores"):
        calibration(np.array([True, False, True]), np.array([0.1, 0.2]))


def test_margin_is_three_standard_errors_with_a_one_point_floor():
    assert rate_margin(0.01) == pytest.approx(0.03)
    assert rate_margin(0.001) == MIN_RATE_GAP


def _month(predicted: float, realized: float, users: int = 7000) -> tuple[np.ndarray, np.ndarray]:
    """Every user scored `predicted`; the first realized * users churned."""
    labels = np.arange(users) < round(realized * users)
    return labels, np.full(users, predicted)


def test_check_warns_on_the_shifted_month_gap_and_passes_a_calibrated_month():
    # The July: 15.6% predicted, 7.1% realized on 7,000 users.
    shifted = calibration_outcome(calibration(*_month(0.156, 0.071)), "3")
    assert not shifted.passed and shifted.severity == "WARN"
    assert "over-predicting" in shifted.description and "15.6%" in shifted.description
    assert shifted.metadata["rate_gap"] == pytest.approx(0.085, abs=1e-4)
    # s.e. sqrt(7000 * 0.156 * 0.844) / 7000 = 0.00434 -> margin max(0.01, 0.013) = 0.013
    assert shifted.metadata["margin"] == pytest.approx(0.013, abs=1e-4)

    calibrated = calibration_outcome(calibration(*_month(0.07, 0.075)), "3")
    assert calibrated.passed and "within margin" in calibrated.description
    under = calibration_outcome(calibration(*_month(0.05, 0.09)), "3")
    assert not under.passed and "under-predicting" in under.description


def test_report_page_and_table_show_the_bins():
    result = calibration(LABELS, SCORES, bins=2)
    png = reliability_png(result, "Reliability 2024-07-31")
    assert png.startswith(b"\x89PNG")
    page = calibration_report_html("2024-07-31", result, "verdict <here>", ["a note"], png)
    assert "Calibration for 2024-07-31" in page and "verdict &lt;here&gt;" in page
    assert "data:image/png;base64," in page and "a note" in page
    assert "37.50%" in page and "50.00%" in page
    table = reliability_table_md(result).splitlines()
    assert table[2] == "| 1 | 2 | 0.100-0.200 | 0.150 | 0.000 |"
    assert table[3] == "| 2 | 2 | 0.400-0.800 | 0.600 | 1.000 |"
