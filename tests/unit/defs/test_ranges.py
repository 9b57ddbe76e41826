"""A check evaluated once over a range of months: failed if any month failed, naming it."""

import dagster as dg

from streamflow_dagster.defs.ranges import combine_checks


def month(passed: bool, severity=dg.AssetCheckSeverity.ERROR, rate=0.0) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key="raw_users",
        check_results=[
            dg.AssetCheckResult(
                asset_key="raw_users",
                check_name="reject_rate",
                passed=passed,
                severity=severity,
                description=f"reject rate {rate:.1%}",
                metadata={"reject_rate": rate},
            )
        ],
    )


def test_a_month_that_failed_fails_the_range_check_and_is_named():
    (check,) = combine_checks(
        [
            ("2024-01-31", month(True)),
            ("2024-02-29", month(False, rate=0.3)),
            ("2024-03-31", month(False, dg.AssetCheckSeverity.WARN, rate=0.05)),
        ]
    )
    assert check.passed is False
    assert check.severity == dg.AssetCheckSeverity.ERROR  # the worst failing month's
    assert check.description.startswith("failed for 2024-02-29, 2024-03-31; 2024-02-29:")
    assert "30.0%" in check.description
    assert check.metadata["failed_months"].value == ["2024-02-29", "2024-03-31"]
    assert check.metadata["2024-02-29 reject_rate"].value == 0.3
    assert check.metadata["by_month"].value["2024-01-31"]["passed"] is True


def test_a_range_where_every_month_passed_passes():
    (check,) = combine_checks([("2024-01-31", month(True)), ("2024-02-29", month(True))])
    assert check.passed is True
    assert check.metadata["failed_months"].value == []
    assert "2024-01-31..2024-02-29 (2)" in check.description
