"""Dagster's default run launcher, plus the health check run monitoring needs.

The default launcher starts each run as a process of the local code server but cannot say
whether that process is still alive, so a run whose worker was killed stayed STARTED for
ever and kept its pool slot. This one finds the worker's pid in the run's own
"Started process for run (pid: N)" event and answers FAILED once that process is gone
(or a zombie), which lets the daemon mark the run failed and free its slots.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

PID_KEY = "pid"


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run worker reported when it started, or None before it has."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False, limit=50
    ).records
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        pid = getattr(data, "metadata", {}).get(PID_KEY)
        if pid is not None and str(pid.value).isdigit():
            return int(pid.value)
    return None


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) is dead."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Field 3 is the state; the command name before it is in parentheses.
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in {"Z", "X"}


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check (same host only)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid = worker_pid(self._instance, run.run_id)
        if pid is None:
            # Not started yet: the start timeout of run monitoring covers this case.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker has not reported its pid")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process {pid} is gone (killed or crashed)"
        )
