"""What the terminal prints for a month: the platform's message, not the innermost library error."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from streamflow_dagster.cli.errors import CheckFailure, month_report, platform_message
from streamflow_dagster.landing.validate import LandingFileError

UTF8_MESSAGE = (
    "users.csv, line 5176: not valid UTF-8 at byte 401 (invalid start byte); "
    "re-export the file as UTF-8"
)


@dg.asset
def reads_latin1() -> None:
    try:
        raise pa.ArrowInvalid("In CSV column #2: Row #5176: CSV conversion error to string")
    except pa.ArrowInvalid as err:
        raise LandingFileError(UTF8_MESSAGE) from err


@dg.asset
def plain_library_error() -> None:
    raise pa.ArrowInvalid("bare library failure")


def step_errors(asset) -> list:
    result = dg.materialize([asset], raise_on_error=False)
    return [
        (e.step_key, e.step_failure_data.error)
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    ]


def test_the_platform_message_wins_over_the_library_error_it_wraps():
    [(step, error)] = step_errors(reads_latin1)
    assert "ArrowInvalid" in error.cause.cause.cls_name  # the chain Dagster recorded
    assert platform_message(error) == UTF8_MESSAGE
    report = month_report([(step, error)], [], [])
    assert report.failures == [f"reads_latin1: {UTF8_MESSAGE}"]


def test_a_library_error_the_platform_did_not_explain_is_shown_as_is():
    [(_, error)] = step_errors(plain_library_error)
    assert platform_message(error) == "bare library failure"


def test_no_error_recorded():
    assert platform_message(None) == "(no error recorded)"


def test_a_month_without_labels_says_so_once_and_lists_no_model_checks():
    reason = "labels for 2024-02-29 have not landed yet: the month's training set is empty"
    report = month_report(
        [],
        [
            CheckFailure("churn_model", "auc_above_floor", "WARN"),
            CheckFailure("churn_model", "loads_from_registry", "WARN"),
            CheckFailure("raw_users", "row_count_change", "WARN"),
        ],
        [
            ("churn_model", {"as_of": "2024-02-29", "model_version": "none", "reason": reason}),
            ("production_model", {"decision": "keep", "reason": "no challenger this month"}),
        ],
    )
    assert report.notes == [f"no churn_model: {reason}"]
    assert report.failed_checks == ["raw_users / row_count_change (WARN)"]


def test_a_trained_model_keeps_its_failed_checks():
    report = month_report(
        [],
        [CheckFailure("churn_model", "auc_above_floor", "ERROR")],
        [("churn_model", {"model_version": 3})],
    )
    assert report.failed_checks == ["churn_model / auc_above_floor (ERROR)"] and not report.notes
