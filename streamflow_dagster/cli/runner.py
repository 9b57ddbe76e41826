"""Submit landed months to the local deployment and wait for them, showing each step.

Every run goes through the instance (queued, then started by the daemon and executed by
the run launcher in the code server) with the workspace's code-location origin, exactly
as a run launched from the UI: it shows under its job, with its logs, metadata and checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ..lib.as_of import months_window
from .errors import CheckFailure, MonthReport, month_report

POLL_S = 0.5
PARTITION_TAG = "dagster/partition"
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


def submit(
    instance: dg.DagsterInstance, workspace, job_name: str, partition_key: str | None = None
) -> str:
    """Create the run from the code location's job (its origin) and queue it; its run id."""
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
    tags = {PARTITION_TAG: partition_key} if partition_key else {}
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
        tags={**remote_job.run_tags, **tags},
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


def wait(
    instance: dg.DagsterInstance, run_id: str, label: str, echo: Callable[[str], None]
) -> MonthRun:
    """Wait for the run to end, echoing each step as it finishes."""
    started = time.monotonic()
    seen = 0
    while True:
        run = instance.get_run_by_id(run_id)
        records = instance.get_records_for_run(run_id, cursor=None).records
        for record in records[seen:]:
            event = record.event_log_entry.dagster_event
            if event is not None and event.event_type in STEP_EVENTS:
                echo(f"    {label} {event.step_key}: {STEP_EVENTS[event.event_type]}")
        seen = len(records)
        if run.is_finished:
            break
        time.sleep(POLL_S)
    report = _report(instance, run_id)
    return MonthRun(
        as_of=label,
        run_id=run_id,
        success=run.status == dg.DagsterRunStatus.SUCCESS,
        seconds=time.monotonic() - started,
        failures=report.failures or _run_failure(instance, run_id),
        failed_checks=report.failed_checks,
        notes=report.notes,
        flagged=run.status != dg.DagsterRunStatus.SUCCESS and _flagged(instance, run),
    )


def run_job(instance, workspace, job_name: str, echo=print, label: str = "") -> MonthRun:
    """One unpartitioned run (the Feast registry, the docs), submitted and waited for."""
    return wait(instance, submit(instance, workspace, job_name), label or job_name, echo)


def run_months(
    instance: dg.DagsterInstance,
    workspace,
    job_name: str,
    months: list[str],
    echo: Callable[[str], None] = print,
) -> list[MonthRun]:
    """One run per month in AS_OF order, each waited for before the next is submitted."""
    results = []
    for i, as_of in enumerate(months, start=1):
        run_id = submit(instance, workspace, job_name, partition_key=as_of)
        echo(f"[{i}/{len(months)}] {as_of}: queued (run {run_id})")
        month = wait(instance, run_id, as_of, echo)
        echo(f"[{i}/{len(months)}] {as_of}: {month.status} in {month.seconds:.1f} s (run {run_id})")
        for line in month.failures:
            echo(f"    step failed: {line}")
        for check in month.failed_checks:
            echo(f"    check failed: {check}")
        for note in month.notes:
            echo(f"    {note}")
        results.append(month)
    return results


def _records(instance: dg.DagsterInstance, run_id: str, event_type) -> list:
    return [
        r.event_log_entry.dagster_event
        for r in instance.get_records_for_run(run_id, of_type=event_type).records
    ]


def _report(instance: dg.DagsterInstance, run_id: str) -> MonthReport:
    """The run's failures, checks and notes in the platform's words (cli/errors.py)."""
    return month_report(
        step_failures=[
            (e.step_key, e.step_failure_data.error)
            for e in _records(instance, run_id, dg.DagsterEventType.STEP_FAILURE)
        ],
        failed_checks=[
            CheckFailure(c.asset_key.to_user_string(), c.check_name, c.severity.value)
            for c in (
                e.event_specific_data
                for e in _records(instance, run_id, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            )
            if not c.passed
        ],
        materializations=[
            (
                e.asset_key.to_user_string(),
                {
                    k: v.value
                    for k, v in e.step_materialization_data.materialization.metadata.items()
                },
            )
            for e in _records(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
        ],
    )


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
    """A run that failed outside any step (e.g. its worker was killed): the run's own words."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return [f"run: {r.event_log_entry.message}" for r in records.records[:1]]
