"""Every check of a monthly asset is a check of the month, and a blocking ERROR failure
withholds the month's materialization (so the UI shows the month failed)."""

from __future__ import annotations

import dagster as dg
import pytest

from streamflow_dagster.definitions import defs
from streamflow_dagster.defs.checks import STOPPED_BY_CHECKS, stop_on_blocking
from streamflow_dagster.defs.partitions import AS_OF_PARTITIONS


def test_every_check_of_a_monthly_asset_is_partitioned_by_month():
    graph = defs.resolve_asset_graph()
    checks = {key: graph.get_check_spec(key) for key in graph.asset_check_keys}
    monthly = {k: s for k, s in checks.items() if graph.get(k.asset_key).partitions_def is not None}
    names = {k.name for k in monthly}
    # landing, dbt tests, model, features and monitors: an empty set would pass trivially
    assert {"reject_rate", "auc_above_floor", "drift_vs_previous_month"} <= names
    assert any(k.name.startswith("unique_") for k in monthly), sorted(names)
    unpartitioned = sorted(
        k.to_user_string() for k, s in monthly.items() if s.partitions_def is None
    )
    assert not unpartitioned, f"checks of monthly assets without partitions_def: {unpartitioned}"
    assert all(s.partitions_def == AS_OF_PARTITIONS for s in monthly.values())


def test_drift_checks_are_blocking():
    graph = defs.resolve_asset_graph()
    for name in ("drift_vs_previous_month", "drift_vs_production_training_month"):
        key = dg.AssetCheckKey(dg.AssetKey("feature_drift"), name)
        assert graph.get_check_spec(key).blocking


CHECKS = [
    dg.AssetCheckSpec("gate", asset="a", blocking=True),
    dg.AssetCheckSpec("info", asset="a"),
    dg.AssetCheckSpec("gate", asset="b", blocking=True),
]


def _run(results_by_asset: dict[str, list[dg.AssetCheckResult]]):
    @dg.multi_asset(specs=[dg.AssetSpec("a"), dg.AssetSpec("b")], check_specs=CHECKS)
    def both(context):
        yield from stop_on_blocking(
            context,
            [
                dg.MaterializeResult(asset_key=asset, metadata={"rows": 7}, check_results=checks)
                for asset, checks in results_by_asset.items()
            ],
        )

    return dg.materialize([both], raise_on_error=False)


def _check(asset: str, name: str, passed: bool, severity=dg.AssetCheckSeverity.ERROR):
    return dg.AssetCheckResult(asset_key=asset, check_name=name, passed=passed, severity=severity)


def test_a_failed_blocking_check_withholds_only_its_asset_and_fails_the_step():
    result = _run(
        {
            "a": [_check("a", "gate", False), _check("a", "info", True)],
            "b": [_check("b", "gate", True)],
        }
    )
    assert not result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"b"}
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert evaluations == {("a", "gate"): False, ("a", "info"): True, ("b", "gate"): True}
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert "a / gate" in data.description
    assert data.metadata[STOPPED_BY_CHECKS].value == "a / gate"
    assert data.metadata["rows"].value == 7  # the withheld materialization's metadata


@pytest.mark.parametrize(
    "gate",
    [
        _check("a", "gate", False, dg.AssetCheckSeverity.WARN),  # a warning never stops
        _check("a", "gate", True),
    ],
)
def test_warnings_and_passes_materialize(gate):
    result = _run({"a": [gate, _check("a", "info", False)], "b": [_check("b", "gate", True)]})
    assert result.success
    assert len(result.get_asset_materialization_events()) == 2


def test_a_failed_non_blocking_error_check_materializes():
    result = _run(
        {
            "a": [_check("a", "gate", True), _check("a", "info", False)],
            "b": [_check("b", "gate", True)],
        }
    )
    assert result.success
