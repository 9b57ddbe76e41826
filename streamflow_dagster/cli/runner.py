"""Materialize landed months through the whole graph, the way the UI does, one run per month.

Runs are recorded in the Dagster instance under $STREAMFLOW_HOME/dagster, so every month
the CLI runs shows in `dagster dev` with its logs, metadata and checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ..defs.partitions import AS_OF_PARTITIONS
from ..landing.months import validate_as_of


@dataclass
class MonthRun:
    as_of: str
    run_id: str
    success: bool
    seconds: float
    failures: list[str]
    failed_checks: list[str]


def select_months(months: list[str], window: str | None) -> list[str]:
    """Months within 'A..B' (inclusive, either side may be empty), or 'A' alone."""
    if not window:
        return months
    start, sep, end = window.partition("..")
    if not sep:
        end = start
    for bound in (start, end):
        if bound:
            validate_as_of(bound)
    chosen = [m for m in months if (not start or m >= start) and (not end or m <= end)]
    if not chosen:
        raise ValueError(
            f"no landed month within {window!r}; landed: {', '.join(months) or 'none'}"
        )
    return chosen


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
    instance.add_dynamic_partitions(AS_OF_PARTITIONS.name, months)
    job = defs.resolve_job_def(job_name)
    results = []
    for i, as_of in enumerate(months, start=1):
        echo(f"[{i}/{len(months)}] {as_of}: materializing ...")
        started = time.monotonic()
        result = _execute(job, instance, log_file, partition_key=as_of)
        month = MonthRun(
            as_of=as_of,
            run_id=result.run_id,
            success=result.success,
            seconds=time.monotonic() - started,
            failures=[
                f"{e.step_key}: {_root_message(e.step_failure_data.error)}"
                for e in result.all_events
                if e.event_type == dg.DagsterEventType.STEP_FAILURE
            ],
            failed_checks=[
                f"{c.asset_key.to_user_string()} / {c.check_name} ({c.severity.value})"
                for c in result.get_asset_check_evaluations()
                if not c.passed
            ],
        )
        status = "ok" if month.success else "FAILED"
        echo(f"[{i}/{len(months)}] {as_of}: {status} in {month.seconds:.1f} s (run {month.run_id})")
        for line in month.failures:
            echo(f"    step failed: {line}")
        for check in month.failed_checks:
            echo(f"    check failed: {check}")
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


def _root_message(error) -> str:
    """The innermost error's message: the asset's own words, not Dagster's wrapper."""
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error is not None else "(no error recorded)"
