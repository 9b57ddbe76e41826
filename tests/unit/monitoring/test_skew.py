"""Served feature values against the offline ones: tolerances, unset values, the check."""

import numpy as np
import pandas as pd
import pytest

from streamflow_dagster.monitoring.skew import (
    REL_TOLERANCE,
    compare_served,
    skew_outcome,
    values_equal,
)

KINDS = {
    "net_service": "STRING",
    "paperless_billing": "BOOL",
    "skips_7d": "INT64",
    "watch_hours_30d": "DOUBLE",
}
OFFLINE = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u3"],
        "net_service": ["DSL", "Fiber optic", None],
        "paperless_billing": [True, False, True],
        "skips_7d": [3, 0, 7],
        "watch_hours_30d": [12.5, 0.0, np.nan],
    }
)


def served(changes: dict | None = None) -> pd.DataFrame:
    """What the prediction log gives: plain JSON values (ints as floats where one is unset)."""
    rows = [
        {"net_service": "DSL", "paperless_billing": True, "skips_7d": 3, "watch_hours_30d": 12.5},
        {
            "net_service": "Fiber optic",
            "paperless_billing": False,
            "skips_7d": 0,
            "watch_hours_30d": 0.0,
        },
        {"net_service": None, "paperless_billing": True, "skips_7d": 7, "watch_hours_30d": None},
    ]
    for (user, feature), value in (changes or {}).items():
        rows[int(user[1:]) - 1][feature] = value
    frame = pd.DataFrame.from_records(rows)
    frame.insert(0, "user_id", ["u1", "u2", "u3"])
    return frame


def test_honest_serving_has_no_skew():
    report = compare_served(served(), OFFLINE, KINDS)
    assert report.rows == 3 and report.users == 3 and not report.missing_offline
    assert [f.differing for f in report.features] == [0, 0, 0, 0]
    assert [f.compared for f in report.features] == [3, 3, 3, 3]
    outcome = skew_outcome(report, "2024-07-31")
    assert outcome.passed and "No skew" in outcome.description


def test_floats_within_the_relative_tolerance_are_equal_and_beyond_it_differ():
    offline = pd.Series([100.0, 100.0, 0.0, 0.0])
    close = pd.Series([100.0 * (1 + REL_TOLERANCE / 2), 100.0 * (1 + REL_TOLERANCE * 3), 0.0, 1e-3])
    assert values_equal(close, offline, "DOUBLE").tolist() == [True, False, True, False]


def test_exact_kinds_and_unset_values():
    assert values_equal(pd.Series([3, 4]), pd.Series([3.0, 3.0]), "INT64").tolist() == [
        True,
        False,
    ]
    # A boolean never equals a number (True == 1 in Python).
    assert values_equal(
        pd.Series([True, True], dtype=object), pd.Series([1, True], dtype=object), "BOOL"
    ).tolist() == [False, True]
    assert values_equal(
        pd.Series(["DSL", "dsl"]), pd.Series(["DSL", "DSL"]), "STRING"
    ).tolist() == [
        True,
        False,
    ]
    # Unset on both sides is equal; unset on one side only is a difference.
    assert values_equal(
        pd.Series([None, None, 1.0]), pd.Series([np.nan, 2.0, np.nan]), "DOUBLE"
    ).tolist() == [True, False, False]


def test_an_altered_served_value_fails_the_check_and_names_the_feature():
    report = compare_served(
        served({("u2", "watch_hours_30d"): 99.0, ("u1", "net_service"): "No"}), OFFLINE, KINDS
    )
    skewed = {f.feature: f for f in report.skewed}
    assert set(skewed) == {"watch_hours_30d", "net_service"}
    assert skewed["watch_hours_30d"].examples == (("u2", 99.0, 0.0),)
    assert skewed["net_service"].examples == (("u1", "No", "DSL"),)
    assert skewed["watch_hours_30d"].tolerance == f"relative {REL_TOLERANCE:g}"
    assert skewed["net_service"].tolerance == "exact"
    outcome = skew_outcome(report, "2024-07-31")
    assert not outcome.passed and outcome.severity == "ERROR"
    assert "watch_hours_30d (1 of 3 served values" in outcome.description
    assert "user u2 served 99.0, offline 0.0" in outcome.description
    assert outcome.metadata["differing_values"] == {"watch_hours_30d": 1, "net_service": 1}


def test_a_served_user_absent_offline_fails_and_unknown_features_are_listed():
    extra = pd.concat(
        [served(), pd.DataFrame({"user_id": ["ghost"], "skips_7d": [1], "new_feature": [1.0]})],
        ignore_index=True,
    )
    report = compare_served(extra, OFFLINE, KINDS)
    assert report.missing_offline == ("ghost",) and report.not_compared == ("new_feature",)
    outcome = skew_outcome(report, "2024-07-31")
    assert not outcome.passed and "1 served user(s) absent from the offline month" in (
        outcome.description
    )


def test_nothing_served_passes_and_says_so():
    empty = pd.DataFrame(columns=["user_id"])
    report = compare_served(empty, OFFLINE, KINDS)
    outcome = skew_outcome(report, "2024-07-31", rows_without_features=4)
    assert outcome.passed and "Nothing to compare" in outcome.description
    assert "4 predictions were logged before" in outcome.description


@pytest.mark.parametrize("kind", ["DOUBLE", "INT64", "STRING", "BOOL"])
def test_empty_columns_compare_to_nothing(kind):
    assert values_equal(pd.Series([], dtype=object), pd.Series([], dtype=object), kind).size == 0
