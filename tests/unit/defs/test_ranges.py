"""A check of a month inside a range run is recorded for that month (its partition)."""

import dagster as dg

from streamflow_dagster.defs.ranges import month_evaluation

RAW_USERS = dg.AssetKey("raw_users")
BLOCKING = {dg.AssetCheckKey(RAW_USERS, "reject_rate")}


def result(passed: bool, severity=dg.AssetCheckSeverity.ERROR, rate=0.0) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key="raw_users",
        check_name="reject_rate",
        passed=passed,
        severity=severity,
        description=f"reject rate {rate:.1%}",
        metadata={"reject_rate": rate},
    )


def test_each_month_of_a_range_gets_its_own_evaluation():
    evaluations = [
        month_evaluation(RAW_USERS, result(passed, rate=rate), as_of, BLOCKING)
        for as_of, passed, rate in [("2024-01-31", True, 0.0), ("2024-02-29", False, 0.3)]
    ]
    assert [e.partition for e in evaluations] == ["2024-01-31", "2024-02-29"]
    assert [e.passed for e in evaluations] == [True, False]
    failed = evaluations[1]
    assert failed.blocking and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.asset_key == RAW_USERS and failed.check_name == "reject_rate"
    assert "30.0%" in failed.description
    assert failed.metadata["reject_rate"].value == 0.3


def test_a_check_without_a_blocking_spec_is_not_blocking():
    warn = result(False, dg.AssetCheckSeverity.WARN, rate=0.05)
    evaluation = month_evaluation(RAW_USERS, warn, "2024-03-31", blocking=set())
    assert not evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.partition == "2024-03-31"
