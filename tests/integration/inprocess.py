"""Months through the graph in the test's own process, on definitions a test built.

The product submits every run through the deployment (streamflow_dagster/cli/runner.py);
tests that give the graph its own database build their Definitions in-process and run
them here with `execute_in_process`, one run per month in order, reported in the same
words as the CLI's (cli/errors.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import dagster as dg

from streamflow_dagster.cli.errors import CheckFailure, MonthReport, month_report
from streamflow_dagster.cli.runner import MonthRun

# The terminal gets one line per month; every event and dbt's own output stay in the
# run's logs in the UI and in the log file the CLI names.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_setup(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    log_file: Path | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize what is not per month (the Feast registry) before the months."""
    return _execute(defs.resolve_job_def(job_name), instance, log_file)


def run_months(
    defs: dg.Definitions,
    job_name: str,
    months: list[str],
    instance: dg.DagsterInstance,
    echo: Callable[[str], None] = print,
    log_file: Path | None = None,
) -> list[MonthRun]:
    """One run per month, in order (a backfill that never races on the same tables)."""
    job = defs.resolve_job_def(job_name)
    results = []
    for i, as_of in enumerate(months, start=1):
        echo(f"[{i}/{len(months)}] {as_of}: materializing ...")
        started = time.monotonic()
        result = _execute(job, instance, log_file, partition_key=as_of)
        report = _report(result)
        month = MonthRun(
            as_of=as_of,
            run_id=result.run_id,
            success=result.success,
            seconds=time.monotonic() - started,
            failures=report.failures,
            failed_checks=report.failed_checks,
            notes=report.notes,
        )
        status = "ok" if month.success else "FAILED"
        echo(f"[{i}/{len(months)}] {as_of}: {status} in {month.seconds:.1f} s (run {month.run_id})")
        for line in month.failures:
            echo(f"    step failed: {line}")
        for check in month.failed_checks:
            echo(f"    check failed: {check}")
        for note in month.notes:
            echo(f"    {note}")
        results.append(month)
    return results


def _execute(
    job, instance: dg.DagsterInstance, log_file: Path | None, partition_key: str | None = None
) -> dg.ExecuteInProcessResult:
    """One run in this process, recorded in `instance`; its output goes to `log_file`."""
    with _output_to(log_file):
        return job.execute_in_process(
            partition_key=partition_key,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET_RUN_CONFIG if log_file else None,
        )


@contextmanager
def _output_to(log_file: Path | None) -> Iterator[None]:
    """Send what runs print (dbt's lines, Dagster's console log) to `log_file`."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as fh, redirect_stdout(fh), redirect_stderr(fh):
        yield


def _report(result: dg.ExecuteInProcessResult) -> MonthReport:
    """The run's failures, checks and notes in the platform's words (cli/errors.py)."""
    return month_report(
        step_failures=[
            (e.step_key, e.step_failure_data.error)
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ],
        failed_checks=[
            CheckFailure(c.asset_key.to_user_string(), c.check_name, c.severity.value)
            for c in result.get_asset_check_evaluations()
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
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        ],
    )
