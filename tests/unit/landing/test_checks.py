from streamflow_dagster.landing.checks import (
    reject_rate_check,
    row_count_change_check,
    schema_check,
)
from streamflow_dagster.landing.contract import TABLES_BY_NAME
from streamflow_dagster.landing.load import TableLoad

USERS = TABLES_BY_NAME["users"]


def load(**kw) -> TableLoad:
    return TableLoad(USERS, landed=True, **kw)


def test_reject_rate_passes_at_threshold_and_fails_above():
    assert reject_rate_check(load(rows_read=100, rows_rejected=2), 0.02).passed
    outcome = reject_rate_check(load(rows_read=100, rows_rejected=3), 0.02)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.metadata["reject_rate"] == 0.03 and outcome.metadata["threshold"] == 0.02


def test_labels_not_landed_is_reported_not_failed():
    outcome = reject_rate_check(TableLoad(TABLES_BY_NAME["labels"], landed=False))
    assert outcome.passed and "has not landed yet" in outcome.description


def test_row_count_change_warns_over_threshold():
    assert row_count_change_check(load(rows_loaded=110, previous_rows=100), 0.25).passed
    outcome = row_count_change_check(load(rows_loaded=50, previous_rows=100), 0.25)
    assert not outcome.passed and outcome.severity == "WARN"
    assert outcome.metadata["change"] == -0.5
    assert row_count_change_check(load(rows_loaded=50, previous_rows=None)).passed


def test_schema_check_missing_is_error_extra_is_warning():
    missing = schema_check(load(missing_columns=("signup_date",)))
    assert not missing.passed and missing.severity == "ERROR"
    extra = schema_check(load(extra_columns=("coupon",)))
    assert not extra.passed and extra.severity == "WARN"
    assert schema_check(load()).passed
