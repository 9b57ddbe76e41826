"""The one adapter from a pure `CheckOutcome` to Dagster's `AssetCheckResult`, and the rule
that shows a month stopped by a blocking check as failed on that month.

Every check spec of a monthly asset carries `partitions_def=AS_OF_PARTITIONS` (Dagster 1.13's
partitioned asset checks): its evaluation records the month it checked, so the check's own
partitions view, the lineage and the catalog count a failure against its month, and the
check's history reads by month.

Dagster's asset partitions view colours a month from its materializations only: a month is
red (failed) when its run failed without materializing it. A blocking check that fails with
ERROR therefore withholds the asset's materialization for that month (`stop_on_blocking`):
the check results are recorded, then the step fails naming them, so the month shows red in
the asset's partitions, its downstream steps do not run, and the run fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import dagster as dg

from ..lib.checks import CheckOutcome

# The step failure of a month stopped by its checks carries this metadata key (the CLI reads
# it to tell a month its checks stopped from one whose code failed).
STOPPED_BY_CHECKS = "stopped_by_checks"


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


def stop_on_blocking(
    context: dg.AssetExecutionContext, results: Iterable[dg.MaterializeResult]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Each asset's result as it is, unless one of its blocking checks failed with ERROR: then
    its check results alone, and after every result a `dg.Failure` naming the stopped checks,
    with the withheld materialization's metadata, so the month shows failed (red)."""
    blocking = {spec.key for spec in context.assets_def.check_specs if spec.blocking}
    stopped: dict[str, dict] = {}
    failed_checks: list[str] = []
    for result in results:
        # A single asset's result may leave its key out; a multi-asset's names it.
        asset = dg.AssetKey.from_coercible(result.asset_key or context.asset_key)
        failed = [
            c.check_name
            for c in result.check_results
            if not c.passed
            and c.severity == dg.AssetCheckSeverity.ERROR
            and dg.AssetCheckKey(asset, c.check_name) in blocking
        ]
        if not failed:
            yield result
            continue
        yield from (c._replace(asset_key=asset) for c in result.check_results)
        stopped[asset.to_user_string()] = dict(result.metadata or {})
        failed_checks += [f"{asset.to_user_string()} / {name}" for name in failed]
    if not stopped:
        return
    metadata = next(iter(stopped.values())) if len(stopped) == 1 else {}
    raise dg.Failure(
        description=f"blocking check(s) failed with ERROR: {', '.join(failed_checks)}; "
        f"{', '.join(stopped)} not materialized for this month (see the checks' metadata)",
        metadata={**metadata, STOPPED_BY_CHECKS: ", ".join(failed_checks)},
    )
