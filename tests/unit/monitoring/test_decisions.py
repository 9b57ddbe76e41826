"""The monitors' decisions: reference months, the scoring model, its promise, out-of-time."""

from datetime import date

import pandas as pd
import pytest

from streamflow_dagster.ml.dataset import HOLDOUT_ROWS_METRIC
from streamflow_dagster.monitoring.decisions import (
    PREVIOUS_MONTH,
    PRODUCTION_MONTH,
    drift_references,
    holdout_expectation,
    out_of_time,
    out_of_time_caveat,
    scoring_model,
    tag_month,
)
from streamflow_dagster.monitoring.performance import (
    RealizedPerformance,
    hanley_mcneil_se,
    performance_outcome,
)

JUNE, JULY = date(2024, 6, 30), date(2024, 7, 31)


# -- drift reference months ------------------------------------------------------------------
def test_drift_compares_with_the_previous_month_and_the_production_training_month():
    chosen = drift_references(JULY, JUNE, "3", "2024-05-31")
    assert chosen.months == {PREVIOUS_MONTH: "2024-06-30", PRODUCTION_MONTH: "2024-05-31"}
    assert chosen.to_read(JULY) == {"2024-06-30", "2024-05-31"}


def test_the_first_month_and_a_model_trained_on_it_have_no_reference():
    chosen = drift_references(JUNE, None, "3", "2024-06-30")
    assert chosen.months == {PREVIOUS_MONTH: None, PRODUCTION_MONTH: "2024-06-30"}
    assert chosen.to_read(JUNE) == set()  # never the month against itself
    assert chosen.reasons[PREVIOUS_MONTH] == (
        "no reference month: 2024-06-30 is the first landed month"
    )
    assert "trained on 2024-06-30 itself" in chosen.reasons[PRODUCTION_MONTH]


@pytest.mark.parametrize(
    "version, tag, reason",
    [
        (None, None, "no model holds alias `production` yet"),
        ("4", None, "v4 has no `as_of` tag, so its training month is unknown"),
        ("4", "", "v4 has no `as_of` tag"),
        ("4", "May", "v4 has an unreadable `as_of` tag 'May'"),
    ],
)
def test_a_production_model_without_a_readable_month_is_said_so(version, tag, reason):
    chosen = drift_references(JULY, JUNE, version, tag)
    assert chosen.months[PRODUCTION_MONTH] is None
    assert reason in chosen.reasons[PRODUCTION_MONTH]
    assert chosen.to_read(JULY) == {"2024-06-30"}


# -- the model behind the scores --------------------------------------------------------------
def test_the_scoring_model_is_the_version_that_scored_most_users():
    versions = pd.Series([3, 3, 5, 5, 5, None])
    assert scoring_model(versions).version == "5"
    assert scoring_model(versions).versions == {"3": 2, "5": 3}
    assert scoring_model(pd.Series([7, 2, 7, 2])).version == "2"  # a tie: the lowest
    assert scoring_model(pd.Series([10, 9, 10])).version == "10"  # numbers, not text
    empty = scoring_model(pd.Series([], dtype=object))
    assert empty.version is None and empty.versions == {}


# -- the promised AUC and its standard error --------------------------------------------------
def test_the_holdout_se_comes_from_the_logged_holdout_size():
    metrics = {"auc": 0.8, "rows": 10_000.0, "churn_rate": 0.1, HOLDOUT_ROWS_METRIC: 1_000.0}
    expected = holdout_expectation(metrics, "3")
    assert expected.auc == 0.8 and expected.note == ""
    assert expected.se == pytest.approx(hanley_mcneil_se(0.8, 100, 900))
    # Not today's HOLDOUT_SHARE x rows (2,000 rows would give a smaller s.e.).
    assert expected.se > hanley_mcneil_se(0.8, 200, 1800)


def test_a_run_without_the_holdout_size_says_so_and_counts_no_se():
    expected = holdout_expectation({"auc": 0.8, "rows": 10_000.0, "churn_rate": 0.1}, "3")
    assert expected.auc == 0.8 and expected.se == 0.0
    assert "v3's run logged no `holdout_rows` metric" in expected.note
    assert "retrain its month (churn_model)" in expected.note.lower()
    no_rate = holdout_expectation({"auc": 0.8, HOLDOUT_ROWS_METRIC: 500.0}, "3")
    assert no_rate.se == 0.0 and "`churn_rate`" in no_rate.note
    nothing = holdout_expectation({}, "3")
    assert nothing.auc is None and nothing.se == 0.0


# -- out of time ----------------------------------------------------------------------------
def test_out_of_time_compares_dates_not_text():
    assert tag_month("2024-06-30") == JUNE
    assert tag_month(None) is None and tag_month("") is None and tag_month("June") is None
    assert out_of_time(JUNE, JULY) is True
    assert out_of_time(JULY, JULY) is False and out_of_time(date(2024, 9, 30), JULY) is False
    assert out_of_time(None, JULY) is None  # unknown, not "a later month"
    # As text, "2024-10-31" < "2024-9-30"; as dates it is later.
    assert out_of_time(date(2024, 10, 31), date(2024, 9, 30)) is False


def test_the_caveat_names_what_is_known():
    assert out_of_time_caveat("3", JUNE, "2024-06-30", JULY) == ""
    own = out_of_time_caveat("3", JULY, "2024-07-31", JULY)
    assert "v3 was trained on this month's own labels" in own and "optimistic" in own
    later = out_of_time_caveat("3", date(2024, 9, 30), "2024-09-30", JULY)
    assert "a later month (2024-09-30)" in later
    missing = out_of_time_caveat("3", None, None, JULY)
    assert "v3 has no `as_of` tag" in missing and "unknown" in missing
    assert "later month" not in missing and "vnone" not in missing
    assert "unreadable `as_of` tag 'x'" in out_of_time_caveat("3", None, "x", JULY)


def test_a_month_whose_scored_users_have_no_labels_says_so():
    nothing = RealizedPerformance(0, 0, 0.0, None, None, 0.0, 0.0)
    outcome = performance_outcome(nothing, None, "none")
    assert not outcome.passed and "No scored user of the month has a label" in outcome.description
    assert "vnone" not in outcome.description
