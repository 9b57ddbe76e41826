"""MLflow runs left RUNNING by a process that is gone: found, ended FAILED, their versions marked.

A month's MLflow run is ended by the step that started it (churn_model, on every exit it
sees). A step killed outright (SIGKILL, a machine restart) cannot end it; the next step that
uses MLflow (churn_model, production_model, `streamflow model ...`) calls
`end_orphaned_runs` first. A RUNNING run is an orphan when
  - its Dagster run (tag dagster_run_id) is over (success, failure, canceled), or
  - the process that started it (tags streamflow.pid / .host / .process_started) no longer
    runs on this host (a pid reused since is told apart by its start time), or
  - it has run longer than STALE_AFTER_S with no live process known (another host).
It is ended FAILED with the reason in tag END_REASON_TAG, and every model version it
registered gets UNFINISHED_RUN_TAG: promotion refuses such a version (ml/promotion.py).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .registry import DAGSTER_RUN_TAG, REGISTERED_MODEL, UNFINISHED_RUN_TAG

PID_TAG = "streamflow.pid"
HOST_TAG = "streamflow.host"
PROCESS_STARTED_TAG = "streamflow.process_started"  # the pid's start time: a reused pid differs
END_REASON_TAG = "streamflow.end_reason"
# A month trains in minutes; a run RUNNING for six hours whose process cannot be checked
# (started on another host) is taken as dead.
STALE_AFTER_S = 6 * 3600
# Dagster run statuses after which nothing will end the MLflow run any more.
DAGSTER_RUN_OVER = {"SUCCESS", "FAILURE", "CANCELED"}
RUNNING, FINISHED = "RUNNING", "FINISHED"


@dataclass(frozen=True)
class EndedRun:
    run_id: str
    reason: str
    versions: tuple[str, ...]  # versions of streamflow_churn it registered, now marked


def process_tags() -> dict[str, str]:
    """Tags that let a later process tell whether the one running now is still alive."""
    return {
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        PROCESS_STARTED_TAG: f"{psutil.Process().create_time():.2f}",
    }


def orphan_reason(
    tags: dict[str, str],
    start_time_ms: int,
    dagster_status: Callable[[str], str | None],
    now: float | None = None,
) -> str | None:
    """Why a RUNNING run will never be ended by its owner, or None if the owner may be alive."""
    dagster_run = tags.get(DAGSTER_RUN_TAG)
    status = dagster_status(dagster_run) if dagster_run else None
    if status in DAGSTER_RUN_OVER:
        return f"its Dagster run {dagster_run} is over ({status}) and never ended it"
    pid = tags.get(PID_TAG, "")
    if pid.isdigit() and tags.get(HOST_TAG) == socket.gethostname():
        if not _alive(int(pid), tags.get(PROCESS_STARTED_TAG)):
            return f"process {pid} that ran it is gone (killed or crashed)"
        return None
    age = (now or time.time()) - start_time_ms / 1000
    if age > STALE_AFTER_S:
        return f"RUNNING for {age / 3600:.1f} h with no live process known"
    return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        process = psutil.Process(pid)
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # another user's live process
    return started is None or abs(created - float(started)) < 1.0


def end_orphaned_runs(
    client: MlflowClient, dagster_status: Callable[[str], str | None] = lambda run_id: None
) -> list[EndedRun]:
    """End every orphaned RUNNING run FAILED (reason tagged) and mark the versions it made."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    ended = []
    running = client.search_runs(
        experiments, filter_string=f"attributes.status = '{RUNNING}'", max_results=1000
    )
    for run in running:
        reason = orphan_reason(run.data.tags, run.info.start_time, dagster_status)
        if reason is None:
            continue
        run_id = run.info.run_id
        client.set_tag(run_id, END_REASON_TAG, reason)
        versions = client.search_model_versions(
            f"name = '{REGISTERED_MODEL}' and run_id = '{run_id}'"
        )
        for version in versions:
            mark_unfinished(client, version, f"run {run_id} ended FAILED: {reason}")
        client.set_terminated(run_id, status="FAILED")
        ended.append(EndedRun(run_id, reason, tuple(str(v.version) for v in versions)))
    return ended


def mark_unfinished(client: MlflowClient, version: ModelVersion | str, reason: str) -> None:
    number = version if isinstance(version, str) else str(version.version)
    client.set_model_version_tag(REGISTERED_MODEL, number, UNFINISHED_RUN_TAG, reason[:4900])


def unfinished_reason(client: MlflowClient, version: ModelVersion) -> tuple[str | None, bool]:
    """(why `version` must not be promoted because of its run, or None; whether it still runs).

    A version whose run ended without finishing is marked on the way (UNFINISHED_RUN_TAG); a
    run still RUNNING is reported without a mark (its step may still finish it).
    """
    marked = version.tags.get(UNFINISHED_RUN_TAG)
    if marked:
        return marked, False
    if not version.run_id:
        return None, False  # registered by hand from a file: no run to finish
    try:
        status = client.get_run(version.run_id).info.status
    except MlflowException as err:
        reason = f"its run {version.run_id} cannot be read ({err.error_code})"
        mark_unfinished(client, version, reason)
        return reason, False
    if status == FINISHED:
        return None, False
    if status == RUNNING:
        return f"its run {version.run_id} is still RUNNING", True
    reason = f"its run {version.run_id} ended {status} and never finished"
    mark_unfinished(client, version, reason)
    return reason, False
