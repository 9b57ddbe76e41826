"""The one adapter from a pure `CheckOutcome` to Dagster's `AssetCheckResult`."""

from __future__ import annotations

import dagster as dg

from ..lib.checks import CheckOutcome


def to_check_result(
    check_name: str, outcome: CheckOutcome, asset: str | None = None
) -> dg.AssetCheckResult:
    """`asset` only where one step materializes several assets (a multi-asset)."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check_name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(outcome.severity),
        description=outcome.description,
        metadata=outcome.metadata,
    )
