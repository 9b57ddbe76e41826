"""One step over a range of months: each month built in AS_OF order, reported per month.

A run over a range (a UI range backfill with a single-run policy, or `streamflow run`) gives
each partitioned asset's step every month of the range. The asset keeps its one-month code
(`one_month(as_of)` returns or yields its `MaterializeResult`s) and `materialize_months` runs
it for each month, oldest first:

- one month: the results pass through unchanged (metadata and checks as a one-month run);
- a range: each month's metadata goes on that month's materialization (the asset's
  partitions view shows it per month), and each check is evaluated once for the range:
  passed only if it passed for every month, its description and metadata name the months
  that failed. A blocking check that failed for any month fails the step after the last
  month, so no month of the range goes further downstream on a month with bad data; the
  failed month is named in the run's check result, its alert and the CLI's summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import dagster as dg

from .partitions import partition_months

# Log line that marks a month done within a step: `streamflow run` echoes these as progress.
MONTH_DONE = "month done:"


def materialize_months(
    context: dg.AssetExecutionContext,
    one_month: Callable[[str], dg.MaterializeResult | Iterable[dg.MaterializeResult]],
) -> Iterator[dg.MaterializeResult]:
    months = partition_months(context)
    if len(months) == 1:
        yield from _results(one_month(months[0]))
        return
    by_asset: dict[dg.AssetKey | None, list[tuple[str, dg.MaterializeResult]]] = {}
    for as_of in months:
        for result in _results(one_month(as_of)):
            by_asset.setdefault(result.asset_key, []).append((as_of, result))
            context.add_asset_metadata(
                dict(result.metadata or {}), asset_key=result.asset_key, partition_key=as_of
            )
        context.log.info(f"{MONTH_DONE} {as_of} {_step_name(context)}")
    for asset_key, results in by_asset.items():
        yield dg.MaterializeResult(
            asset_key=asset_key,
            metadata={"months": f"{months[0]}..{months[-1]}", "month_count": len(months)},
            check_results=combine_checks(results),
        )


def combine_checks(results: list[tuple[str, dg.MaterializeResult]]) -> list[dg.AssetCheckResult]:
    """One result per check over the months: failed if any month failed, naming them."""
    by_check: dict[tuple, list[tuple[str, dg.AssetCheckResult]]] = {}
    for as_of, result in results:
        for check in result.check_results:
            by_check.setdefault((check.asset_key, check.check_name), []).append((as_of, check))
    return [_combined(asset_key, name, checks) for (asset_key, name), checks in by_check.items()]


def _combined(asset_key, name: str, checks: list[tuple[str, dg.AssetCheckResult]]):
    months = [as_of for as_of, _ in checks]
    failed = [(as_of, c) for as_of, c in checks if not c.passed]
    by_month = {
        as_of: {"passed": c.passed, "severity": c.severity.value, "description": c.description}
        for as_of, c in checks
    }
    if not failed:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=name,
            passed=True,
            severity=checks[0][1].severity,
            description=f"passed for every month {months[0]}..{months[-1]} ({len(months)})",
            metadata={"failed_months": dg.MetadataValue.json([]), "by_month": by_month},
        )
    severities = {c.severity for _, c in failed}
    severity = (
        dg.AssetCheckSeverity.ERROR
        if dg.AssetCheckSeverity.ERROR in severities
        else dg.AssetCheckSeverity.WARN
    )
    first_month, first = failed[0]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=False,
        severity=severity,
        description=f"failed for {', '.join(m for m, _ in failed)}; {first_month}: "
        f"{first.description or 'no description'}",
        metadata={
            **{f"{first_month} {k}": v for k, v in first.metadata.items()},
            "failed_months": dg.MetadataValue.json([m for m, _ in failed]),
            "by_month": by_month,
        },
    )


def _results(produced) -> list[dg.MaterializeResult]:
    return [produced] if isinstance(produced, dg.MaterializeResult) else list(produced)


def _step_name(context: dg.AssetExecutionContext) -> str:
    return context.op_execution_context.op_def.name
