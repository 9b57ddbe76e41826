"""Months materialized concurrently (as a UI backfill does) equal months run one by one.

Three `streamflow run` processes start at once against one Dagster instance and one
database; the `dbt_warehouse` pool lets one dbt build in at a time, so they do not race on
the shared staging views or a mart's first creation. The marts must come out
byte-identical to a sequential run of the same months in another database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.cli.summary import MART_TABLES
from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.jobs import MONTHLY_JOB, SETUP_JOB
from streamflow_dagster.defs.resources import LandingResource, WarehouseResource
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.db import ensure_database, with_database
from streamflow_dagster.platform.instance import DAGSTER_DB, STORAGE_URL_ENV
from tests.integration.helpers import table_checksum
from tests.integration.inprocess import run_months, run_setup

pytestmark = pytest.mark.integration

MONTHS = ["2024-01-31", "2024-02-29", "2024-03-31"]


def marts(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {
            (m, month): table_checksum(conn, "marts", m, "as_of = %s", (month,))
            for m in MART_TABLES
            for month in MONTHS
        }


def dbt_step_time(events, event_type: str) -> float:
    """When the run's dbt step reached `event_type` (it happens once per run)."""
    return next(
        e.timestamp
        for e in events
        if e.dagster_event
        and e.dagster_event.event_type_value == event_type
        and e.step_key == "dbt_models"
    )


def dbt_step_windows(dagster_home: Path) -> list[tuple[float, float]]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        windows = []
        for run in instance.get_runs():
            if run.job_name != MONTHLY_JOB:  # each CLI run also applies the Feast registry
                continue
            events = instance.all_logs(run.run_id)
            windows.append(
                (dbt_step_time(events, "STEP_START"), dbt_step_time(events, "STEP_SUCCESS"))
            )
        return sorted(windows)


def test_concurrent_months_equal_sequential_months(tmp_path, pg_server, database_url, monkeypatch):
    landing = tmp_path / "landing"
    generate_landing(landing, users=300, months=len(MONTHS), seed=11)

    definitions = build_definitions(
        warehouse=WarehouseResource(database_url=database_url),
        landing=LandingResource(path=str(landing)),
    )
    with dg.instance_for_test() as instance:
        assert run_setup(definitions, SETUP_JOB, instance).success
        runs = run_months(definitions, MONTHLY_JOB, MONTHS, instance, echo=lambda _: None)
    assert all(r.success for r in runs)

    concurrent_db = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_c"
    ensure_database(pg_server.url("postgres"), concurrent_db.rsplit("/", 1)[1])
    dagster_home = tmp_path / "dagster"
    env = {
        **os.environ,
        "STREAMFLOW_DATABASE_URL": concurrent_db,
        "STREAMFLOW_LANDING_DIR": str(landing),
        "STREAMFLOW_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(dagster_home),
    }
    cli = [sys.executable, "-m", "streamflow_dagster.cli.main", "run", "--months"]
    try:
        processes = [
            subprocess.Popen(
                [*cli, m], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for m in MONTHS
        ]
        outputs = [p.communicate(timeout=600)[0] for p in processes]
    finally:  # the deployment the commands started outlives them
        stop = [sys.executable, "-m", "streamflow_dagster.cli.main", "deploy", "stop"]
        subprocess.run(stop, env=env, check=False)
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(o[-3000:] for o in outputs)

    # The instance's storage URL on an external server is read from the environment (its
    # dagster.yaml names the variable, never the password).
    monkeypatch.setenv(STORAGE_URL_ENV, with_database(concurrent_db, DAGSTER_DB))
    windows = dbt_step_windows(dagster_home)
    assert len(windows) == len(MONTHS)
    for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert next_start >= end, "two dbt builds overlapped despite the pool"
    assert marts(concurrent_db) == marts(database_url)
