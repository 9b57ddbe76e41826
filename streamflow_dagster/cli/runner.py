"""Submit landed months to the local deployment and wait for them, showing each step.

A range of consecutive months is ONE run (partition range tags, as a UI range backfill with
a single-run policy makes): each asset builds its months in AS_OF order (defs/ranges.py), and
the launch, dbt's start-up and parse are paid once for the range. Every run goes through the
instance (queued, then started by the daemon and executed by the run launcher in the code
server) with the workspace's code-location origin, exactly as a run launched from the UI: it
shows under its job, with its logs, metadata and checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from ..defs.ranges import MONTH_DONE
from ..lib.as_of import month_end, months_window
from .errors import CheckFailure, MonthReport, month_report

POLL_S = 0.5
PARTITION_TAG = "dagster/partition"
# Dagster's tags for a run over a partition range (dagster._core.storage.tags).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
STEP_EVENTS = {dg.DagsterEventType.STEP_SUCCESS: "done", dg.DagsterEventType.STEP_FAILURE: "FAILED"}


@dataclass
class MonthRun:
    as_of: str
    run_id: str
    success: bool
    seconds: float
    failures: list[str]
    failed_checks: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. no model: labels not landed yet
    # Failed only because a blocking check withheld an asset that nothing in the run waits on
    # (the drift monitor): every step ran, the month is red in the UI for a person to look at.
    flagged: bool = False

    @property
    def status(self) -> str:
        return "ok" if self.success else "FLAGGED" if self.flagged else "FAILED"


def select_months(months: list[str], window: str | None) -> list[str]:
    """Months within 'A..B' (inclusive, either side may be empty), or 'A' alone; a month is
    its AS_OF (2024-03-31) or YYYY-MM (2024-03)."""
    if not window:
        return months
    start, end = months_window(window)
    chosen = [m for m in months if (not start or m >= str(start)) and (not end or m <= str(end))]
    if not chosen:
        asked = f"{start or 'the first'}..{end or 'the last'}" if start != end else str(start)
        raise ValueError(f"no landed month within {asked}; landed: {', '.join(months) or 'none'}")
    return chosen


# The terminal gets one line per month; every event and dbt's own output stay in the
# run's logs in the UI and in the log file the CLI names.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@contextmanager
def deployment_workspace(instance: dg.DagsterInstance, workspace: Path) -> Iterator:
    """A request context on the deployment's workspace (the code server it started)."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as process:
        context = process.create_request_context()
        for name in context.code_location_names:
            error = context.get_code_location_error(name)
            if error is not None:
                raise RuntimeError(f"the code location {name} did not load: {error.message}")
        yield context


def month_ranges(months: list[str]) -> list[list[str]]:
    """Months (AS_OF, sorted) split into runs of consecutive months: one Dagster run each.
    A gap (a month that has not landed) starts a new range, so no run asks for it."""
    ranges: list[list[str]] = []
    for month in sorted(months):
        if ranges and _next_month(ranges[-1][-1]) == month:
            ranges[-1].append(month)
        else:
            ranges.append([month])
    return ranges


def _next_month(as_of: str) -> str:
    day = date.fromisoformat(as_of) + timedelta(days=1)  # the next month's first day
    return month_end(day).isoformat()


def partition_tags(months: list[str]) -> dict[str, str]:
    """The run's partition tags: one month's key, or the range's first and last keys."""
    if not months:
        return {}
    if len(months) == 1:
        return {PARTITION_TAG: months[0]}
    return {RANGE_START_TAG: months[0], RANGE_END_TAG: months[-1]}


def submit(
    instance: dg.DagsterInstance, workspace, job_name: str, months: list[str] | None = None
) -> str:
    """Create the run from the code location's job (its origin) and queue it; its run id.
    `months`: consecutive months (month_ranges), one run over all of them."""
    from dagster._core.definitions.selector import JobSubsetSelector

    (location,) = workspace.code_locations
    (repository,) = location.get_repositories().values()
    remote_job = location.get_job(
        JobSubsetSelector(
            location_name=location.name,
            repository_name=repository.name,
            job_name=job_name,
            op_selection=None,
        )
    )
    plan = location.get_execution_plan(
        remote_job, {}, step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.run_tags, **partition_tags(months or [])},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )
    return instance.submit_run(run.run_id, workspace).run_id


@dataclass
class RunEnd:
    run_id: str
    success: bool
    seconds: float


def wait(
    instance: dg.DagsterInstance, run_id: str, label: str, echo: Callable[[str], None]
) -> RunEnd:
    """Wait for the run to end, echoing each step as it finishes and, in a run over a range,
    each month as a step finishes it."""
    started = time.monotonic()
    seen = 0
    while True:
        run = instance.get_run_by_id(run_id)
        records = instance.get_records_for_run(run_id, cursor=None).records
        for record in records[seen:]:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is not None and event.event_type in STEP_EVENTS:
                echo(f"    {label} {event.step_key}: {STEP_EVENTS[event.event_type]}")
            elif event is None and entry.user_message.startswith(MONTH_DONE):
                as_of, _, step = entry.user_message[len(MONTH_DONE) :].strip().partition(" ")
                echo(f"      {as_of} {step}: done")
        seen = len(records)
        if run.is_finished:
            break
        time.sleep(POLL_S)
    return RunEnd(run_id, run.status == dg.DagsterRunStatus.SUCCESS, time.monotonic() - started)


def run_job(instance, workspace, job_name: str, echo=print, label: str = "") -> MonthRun:
    """One unpartitioned run (the Feast registry, the docs), submitted and waited for."""
    end = wait(instance, submit(instance, workspace, job_name), label or job_name, echo)
    report = _report(instance, end.run_id, [label or job_name])[label or job_name]
    return _month_run(label or job_name, end, end.seconds, report, instance, flagged=False)


def run_months(
    instance: dg.DagsterInstance,
    workspace,
    job_name: str,
    months: list[str],
    echo: Callable[[str], None] = print,
) -> list[MonthRun]:
    """One run per range of consecutive months (usually one run for all), in AS_OF order,
    each waited for before the next is submitted; a result per month."""
    results = []
    ranges = month_ranges(months)
    for i, chunk in enumerate(ranges, start=1):
        results += _run_range(instance, workspace, job_name, chunk, f"[{i}/{len(ranges)}]", echo)
    return results


def _run_range(instance, workspace, job_name, chunk, counter, echo) -> list[MonthRun]:
    """The months of `chunk` in one run. When a month's blocking check fails, nothing past
    that check ran for any month of the run: the months BEFORE the bad one run again, on
    their own (every month is idempotent); the bad month and the later ones stay FAILED, so
    no later month proceeds on a bad month's data."""
    label = chunk[0] if len(chunk) == 1 else f"{chunk[0]}..{chunk[-1]}"
    prefix = f"{counter} {label}" + (f" ({len(chunk)} months)" if len(chunk) > 1 else "")
    run_id = submit(instance, workspace, job_name, months=chunk)
    echo(f"{prefix}: queued (run {run_id})")
    end = wait(instance, run_id, label, echo)
    # Flagged: every step ran, only a monitor's blocking check failed (nothing downstream of
    # it): its months are FLAGGED, the others ok, and nothing needs to run again.
    flagged = not end.success and _flagged(instance, instance.get_run_by_id(run_id))
    status = "ok" if end.success else "FLAGGED" if flagged else "FAILED"
    echo(f"{prefix}: {status} in {end.seconds:.1f} s (run {run_id})")
    reports = _report(instance, run_id, chunk)
    bad = None if end.success or flagged else _first_blocked_month(instance, run_id, chunk)
    results = []
    for as_of in chunk:
        # A month's own time is not measured inside a range: its share of the run's.
        month = _month_run(as_of, end, end.seconds / len(chunk), reports[as_of], instance, flagged)
        if bad is not None and as_of > bad:
            month.failures = [f"not built past the failed check of {bad} (same run)"]
            month.failed_checks = []
        for line in month.failures:
            echo(f"    {as_of} step failed: {line}")
        for check in month.failed_checks:
            echo(f"    {as_of} check failed: {check}")
        for note in month.notes:
            echo(f"    {as_of} {note}")
        results.append(month)
    if bad is not None and bad != chunk[0]:
        before = chunk[: chunk.index(bad)]
        echo(f"{prefix}: {bad} failed a blocking check; running {before[0]}..{before[-1]} alone")
        redone = _run_range(instance, workspace, job_name, before, counter, echo)
        results = redone + results[len(before) :]
    return results


def _first_blocked_month(instance, run_id: str, months: list[str]) -> str | None:
    """The oldest month whose blocking check failed with ERROR in the run, if any."""
    blocked = set()
    for evaluation in (
        e.event_specific_data
        for e in _records(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ):
        if not evaluation.passed and evaluation.blocking and evaluation.severity.value == "ERROR":
            blocked |= set(_check_months(evaluation, months))
    return min(blocked) if blocked else None


def _month_run(
    as_of: str, end: RunEnd, seconds: float, report: MonthReport, instance, flagged: bool
) -> MonthRun:
    """A month of the run. In a run that every step ran but a blocking check stopped (a
    flagged run), the months whose checks all passed are ok, the others FLAGGED."""
    ok = end.success or (flagged and not report.failed_checks)
    return MonthRun(
        as_of=as_of,
        run_id=end.run_id,
        success=ok,
        seconds=seconds,
        # A flagged month's failed checks say why; the step's failure (which names every
        # stopped month of the range) would only repeat them.
        failures=[] if ok or flagged else report.failures or _run_failure(instance, end.run_id),
        failed_checks=report.failed_checks,
        notes=report.notes,
        flagged=flagged and not ok,
    )


def _records(instance: dg.DagsterInstance, run_id: str, event_type) -> list:
    return [
        r.event_log_entry.dagster_event
        for r in instance.get_records_for_run(run_id, of_type=event_type).records
    ]


def _report(instance: dg.DagsterInstance, run_id: str, months: list[str]) -> dict:
    """Each month's failures, checks and notes in the platform's words (cli/errors.py).

    In a run over a range, a materialization names its month (its partition); a check names
    the months it failed for (`failed_months`, defs/ranges.py) or, evaluated once for the
    range (dbt's tests), counts for every month; a failed step stops every month of the run.
    """
    step_failures = [
        (e.step_key, e.step_failure_data.error)
        for e in _records(instance, run_id, dg.DagsterEventType.STEP_FAILURE)
    ]
    checks: dict[str, list[CheckFailure]] = {m: [] for m in months}
    for evaluation in (
        e.event_specific_data
        for e in _records(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ):
        if evaluation.passed:
            continue
        failed = CheckFailure(
            evaluation.asset_key.to_user_string(),
            evaluation.check_name,
            evaluation.severity.value,
        )
        for month in _check_months(evaluation, months):
            checks[month].append(failed)
    materialized: dict[str, list] = {m: [] for m in months}
    for event in _records(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = event.step_materialization_data.materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        for month in (
            [materialization.partition] if materialization.partition in materialized else months
        ):
            materialized[month].append((event.asset_key.to_user_string(), metadata))
    return {
        m: month_report(
            step_failures=step_failures, failed_checks=checks[m], materializations=materialized[m]
        )
        for m in months
    }


def _check_months(evaluation, months: list[str]) -> list[str]:
    if evaluation.partition in months:
        return [evaluation.partition]
    named = evaluation.metadata.get("failed_months")
    if named is not None and len(months) > 1:
        return [m for m in named.value if m in months]
    return months


def _flagged(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Every failed step was stopped by its checks (defs/checks.py) and every step ran."""
    from ..defs.checks import STOPPED_BY_CHECKS

    failures = _records(instance, run.run_id, dg.DagsterEventType.STEP_FAILURE)
    stopped = [
        f
        for f in failures
        if f.step_failure_data.user_failure_data is not None
        and STOPPED_BY_CHECKS in f.step_failure_data.user_failure_data.metadata
    ]
    if not failures or len(stopped) < len(failures):
        return False
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    started = {e.step_key for e in _records(instance, run.run_id, dg.DagsterEventType.STEP_START)}
    return set(plan.step_keys_to_execute) <= started


def _run_failure(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """A run that failed outside any step (e.g. its worker was killed, or its launch timed
    out): the run's own words, then the errors the platform recorded for it (the last line
    of each, where the exception says what went wrong); Dagster's failure message alone
    ("marked as failed from outside the execution context") does not say why."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    lines = [f"run: {r.event_log_entry.message}" for r in records.records[:1]]
    engine = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False, limit=20
    ).records
    for record in reversed(engine):
        data = record.event_log_entry.dagster_event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            error_lines = (error.message or "").strip().splitlines()
            detail = f": {error_lines[-1]}" if error_lines else ""
            lines.append(f"run: {record.event_log_entry.message}{detail}")
    return lines[:4]
