"""One step over a range of months: each month built in AS_OF order, reported per month.

A run over a range (a UI range backfill with a single-run policy, or `streamflow run`) gives
each partitioned asset's step every month of the range. The asset keeps its one-month code
(`one_month(as_of)` returns or yields its `MaterializeResult`s) and `materialize_months` runs
it for each month, oldest first:

- one month: the results pass through `stop_on_blocking` (defs/checks.py): a blocking check
  failed with ERROR withholds the month's materialization, so the month shows failed (red);
- a range: each month's metadata goes on that month's materialization, and each check is
  recorded for its own month (an `AssetCheckEvaluation` carrying the partition: Dagster 1.13
  gives a check result in a ranged step no partition, so the evaluation is built here). If a
  blocking check failed with ERROR for any month, the months that passed are materialized,
  the failed months are not (red in the partitions view), and the step fails after the last
  month naming them, so no month of the range goes further downstream on bad data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as TargetMaterialization,
)

from .checks import STOPPED_BY_CHECKS, stop_on_blocking
from .partitions import partition_months

# Log line that marks a month done within a step: `streamflow run` echoes these as progress.
MONTH_DONE = "month done:"


def materialize_months(
    context: dg.AssetExecutionContext,
    one_month: Callable[[str], dg.MaterializeResult | Iterable[dg.MaterializeResult]],
) -> Iterator:
    months = partition_months(context)
    if len(months) == 1:
        yield from stop_on_blocking(context, _results(one_month(months[0])))
        return
    blocking = {spec.key for spec in context.assets_def.check_specs if spec.blocking}
    passed: list[tuple[str, dg.AssetKey, dg.MaterializeResult]] = []
    # A materialized month's evaluations follow its materialization and name it as their
    # target: Dagster counts a month's check only when it targets the month's latest
    # materialization (else the check's partitions view says the month is missing).
    checked: list[tuple[str, dg.AssetKey, list[dg.AssetCheckResult]]] = []
    stopped: list[str] = []
    for as_of in months:
        for result in _results(one_month(as_of)):
            asset = dg.AssetKey.from_coercible(result.asset_key or context.asset_key)
            checks = result.check_results
            evaluations = [month_evaluation(asset, c, as_of, blocking) for c in checks]
            failed = [
                e.check_name
                for e in evaluations
                if e.blocking and not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
            ]
            if failed:
                yield from evaluations  # the month is withheld: nothing to target
                stopped += [f"{as_of} {asset.to_user_string()} / {name}" for name in failed]
            else:
                passed.append((as_of, asset, result))
                checked.append((as_of, asset, result.check_results))
        context.log.info(f"{MONTH_DONE} {as_of} {_step_name(context)}")
    yield from check_outputs(context)
    if stopped:
        for as_of, asset, result in passed:
            yield dg.AssetMaterialization(
                asset_key=asset, partition=as_of, metadata=dict(result.metadata or {})
            )
        yield from targeting_materializations(context, checked, blocking)
        raise dg.Failure(
            description=f"blocking check(s) failed with ERROR: {', '.join(stopped)}; those "
            "months are not materialized (see the checks' metadata); the months that passed are",
            metadata={STOPPED_BY_CHECKS: ", ".join(stopped)},
        )
    assets = []
    for as_of, asset, result in passed:
        context.add_asset_metadata(
            dict(result.metadata or {}), asset_key=asset, partition_key=as_of
        )
        if asset not in assets:
            assets.append(asset)
    for asset in assets:
        yield dg.MaterializeResult(
            asset_key=asset,
            metadata={"months": f"{months[0]}..{months[-1]}", "month_count": len(months)},
        )
    yield from targeting_materializations(context, checked, blocking)


def targeting_materializations(context: dg.AssetExecutionContext, checked, blocking) -> Iterator:
    """Each month's evaluations, naming the month's materialization (just recorded) as their
    target, as Dagster does for a check result of a one-month step."""
    for as_of, asset, checks in checked:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[as_of]), limit=1
        ).records
        target = None
        if records:
            target = TargetMaterialization(
                run_id=records[0].event_log_entry.run_id,
                storage_id=records[0].storage_id,
                timestamp=records[0].timestamp,
            )
        for check in checks:
            yield month_evaluation(asset, check, as_of, blocking, target)


def month_evaluation(
    asset: dg.AssetKey,
    check: dg.AssetCheckResult,
    as_of: str,
    blocking: set,
    target: TargetMaterialization | None = None,
) -> dg.AssetCheckEvaluation:
    """The check's result, recorded for its month (the partition the check looked at), on
    the month's materialization `target` when there is one."""
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey.from_coercible(check.asset_key or asset),
        check_name=check.check_name,
        passed=check.passed,
        metadata=dict(check.metadata or {}),
        severity=check.severity,
        description=check.description,
        blocking=dg.AssetCheckKey(asset, check.check_name) in blocking,
        partition=as_of,
        target_materialization_data=target,
    )


def check_outputs(context: dg.AssetExecutionContext, keys=None) -> Iterator[dg.Output]:
    """The step's check outputs (all selected ones, or `keys`): required by Dagster for a step
    with check specs, and what an `AssetCheckResult` would have yielded had its evaluation
    been left to Dagster."""
    selected = context.selected_asset_check_keys if keys is None else keys
    for name, spec in context.assets_def.check_specs_by_output_name.items():
        if spec.key in selected:
            yield dg.Output(None, output_name=name)


def _results(produced) -> list[dg.MaterializeResult]:
    return [produced] if isinstance(produced, dg.MaterializeResult) else list(produced)


def _step_name(context: dg.AssetExecutionContext) -> str:
    return context.op_execution_context.op_def.name
