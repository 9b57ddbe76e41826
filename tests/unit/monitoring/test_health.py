"""The month-health table: drift level, blocking vs warning checks, AUC and calibration cells."""

from __future__ import annotations

from streamflow_dagster.monitoring.health import (
    NONE,
    CheckResult,
    MonthHealth,
    calibration,
    drift_level,
    realized_auc,
    render_markdown,
    render_text,
)

DRIFT_ERROR = CheckResult("feature_drift", "drift_vs_previous_month", False, "ERROR", True, 0.4)
DRIFT_WARN = CheckResult("feature_drift", "drift_vs_previous_month", False, "WARN", True, 0.15)
DRIFT_OK = CheckResult(
    "feature_drift", "drift_vs_production_training_month", True, "WARN", True, 0.02
)
NOTHING_TO_COMPARE = CheckResult("feature_drift", "drift_vs_previous_month", True, "WARN", True)
ROW_COUNT = CheckResult("raw_users", "row_count_change", False, "WARN", False)
DBT_ERROR = CheckResult("stg_users", "not_null_stg_users_user_id", False, "ERROR", False)


def test_drift_level_is_the_worst_drift_check():
    assert drift_level([DRIFT_OK, DRIFT_ERROR]) == "major"
    assert drift_level([DRIFT_OK, DRIFT_WARN]) == "moderate"
    assert drift_level([DRIFT_OK, ROW_COUNT]) == "stable"
    assert drift_level([ROW_COUNT]) == NONE  # the monitor never ran for the month
    assert drift_level([NOTHING_TO_COMPARE]) == "no reference"  # the first month


def test_blocking_failures_are_failed_blocking_error_checks_only():
    month = MonthHealth("2024-07-31", checks=[DRIFT_ERROR, DRIFT_OK, ROW_COUNT, DBT_ERROR])
    assert month.failed_blocking == ["feature_drift / drift_vs_previous_month"]
    assert month.failed_warning == [
        "raw_users / row_count_change",
        "stg_users / not_null_stg_users_user_id",
    ]


def test_auc_and_calibration_cells():
    assert realized_auc({"auc": 0.81234, "scored_out_of_time": True}) == "0.812"
    assert realized_auc({"auc": 0.918, "scored_out_of_time": False}) == "0.918 in-sample"
    assert realized_auc({"labels_landed": False}) == NONE
    assert calibration({"predicted_churn_rate": 0.156, "churn_rate": 0.071}) == "15.6% vs 7.1%"
    assert calibration({"churn_rate": 0.071}) == NONE  # no calibration metric on this branch


def test_tables_name_the_failed_checks():
    months = [
        MonthHealth("2024-06-30", 14_000, 0, [DRIFT_OK], "6", "promote", True, {"auc": 0.8}),
        MonthHealth("2024-07-31", 14_100, 3, [DRIFT_ERROR, ROW_COUNT], open_alerts=3),
    ]
    lines = render_text(months)
    assert lines[0].split()[:3] == ["AS_OF", "landed", "rejected"]
    june, july = lines[1].split(), lines[2].split()
    assert june[:8] == ["2024-06-30", "14,000", "0", "0", "0", "stable", "v6", "(production)"]
    assert july[:6] == ["2024-07-31", "14,100", "3", "1", "1", "major"] and july[-1] == "3"
    assert "! 2024-07-31 blocking check failed: feature_drift / drift_vs_previous_month" in lines
    assert "  2024-07-31 check warned: raw_users / row_count_change" in lines
    table = render_markdown(months).splitlines()
    assert len(table) == 4 and "feature_drift / drift_vs_previous_month" in table[3]
