"""Months run at the same time equal months run one by one in AS_OF order.

Two runs of the same landing months, each in its own database and MLflow registry: one by
one in AS_OF order (the reference), and as three `streamflow run`
processes started at once against one Dagster instance (the `dbt_warehouse` pool lets one
dbt build in at a time). Both must give byte-identical marts, training sets and scores
per month, the same model metrics, the same decision chain (each month's action and the
month of the champion it faced) and the same aliases. Versions are compared by their month:
their numbers follow the order in which they were registered. Months in reverse order:
tests/integration/ml/test_month_order.py.
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
from streamflow_dagster.defs.resources import (
    LandingResource,
    MlflowStoreResource,
    WarehouseResource,
)
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.db import ensure_database, with_database
from streamflow_dagster.platform.instance import DAGSTER_DB, STORAGE_URL_ENV
from streamflow_dagster.platform.mlflow_store import MlflowStore, prepare_store
from tests.integration.helpers import table_checksum
from tests.integration.inprocess import run_months, run_setup
from tests.integration.ml.outcome import model_outcome
from tests.integration.ml.support import fresh_mlflow_store

# 323 s alone on a quiet machine (the suite's longest test); the default 600 s timeout is too
# close once it shares two cores with other workers (`make test`) or a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

MONTHS = ["2024-01-31", "2024-02-29", "2024-03-31"]
# Enough users for every month to train (at least 20 churners in each split at ~7% churn)
# and few enough to stay cheap.
USERS = 800


def marts(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {
            (m, month): table_checksum(conn, "marts", m, "as_of = %s", (month,))
            for m in MART_TABLES
            for month in MONTHS
        }


def outcome(url: str, store: MlflowStore) -> dict:
    return {"marts": marts(url), **model_outcome(url, store, MONTHS)}


def run_in_process(url: str, landing: Path, store: MlflowStore, months: list[str]) -> None:
    """The months one by one in this process, in the order given."""
    definitions = build_definitions(
        warehouse=WarehouseResource(database_url=url),
        landing=LandingResource(path=str(landing)),
        mlflow_store=MlflowStoreResource(
            tracking_uri=store.tracking_uri, artifact_root=str(store.artifact_root)
        ),
    )
    with dg.instance_for_test() as instance:
        assert run_setup(definitions, SETUP_JOB, instance).success
        runs = run_months(definitions, MONTHLY_JOB, months, instance, echo=lambda _: None)
    assert all(r.success for r in runs), [(r.as_of, r.failures) for r in runs if not r.success]


def new_database(pg_server, database_url: str, suffix: str) -> str:
    url = f"{database_url}_{suffix}"
    ensure_database(pg_server.url("postgres"), url.rsplit("/", 1)[1])
    return url


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


def failed_lines(logs: list[Path]) -> str:
    """What the commands said went wrong: their failure lines first (CI cuts long output)."""
    words = ("FAILED", "Error", "error", "run:")
    return "\n".join(
        f"{log.name}: {line}"
        for log in logs
        for line in log.read_text().splitlines()
        if any(word in line for word in words)
    )


def test_concurrent_months_equal_sequential_months(tmp_path, pg_server, database_url, monkeypatch):
    landing = tmp_path / "landing"
    generate_landing(landing, users=USERS, months=len(MONTHS), seed=11)
    server = pg_server.url("postgres")
    stores = {name: fresh_mlflow_store(server, tmp_path / f"mlflow-{name}") for name in "sc"}

    concurrent_db = new_database(pg_server, database_url, "c")
    prepare_store(stores["c"])  # its experiment keeps its artifacts under the test's folder
    dagster_home = tmp_path / "dagster"
    env = {
        **os.environ,
        "STREAMFLOW_DATABASE_URL": concurrent_db,
        "STREAMFLOW_LANDING_DIR": str(landing),
        "STREAMFLOW_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(dagster_home),
        "MLFLOW_TRACKING_URI": stores["c"].tracking_uri,
    }
    cli = [sys.executable, "-m", "streamflow_dagster.cli.main", "run", "--months"]
    logs = [tmp_path / f"run-{m}.log" for m in MONTHS]  # files: a full pipe would block them
    processes: list[subprocess.Popen] = []
    try:
        for month, log in zip(MONTHS, logs, strict=True):
            with log.open("w") as out:
                processes.append(
                    subprocess.Popen([*cli, month], env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        # The reference, one by one in this process, while the three commands run: its own
        # database, registry and (ephemeral) instance, so nothing is shared with them but the
        # landing files they read. Most of the commands' time is spent waiting (process
        # start-up, the run queue, the pool), which the reference fills.
        run_in_process(database_url, landing, stores["s"], MONTHS)
        sequential = outcome(database_url, stores["s"])
        for process in processes:
            process.wait(timeout=900)
    finally:  # the deployment the commands started outlives them
        for process in processes:
            if process.poll() is None:
                process.kill()
        stop = [sys.executable, "-m", "streamflow_dagster.cli.main", "deploy", "stop"]
        subprocess.run(stop, env=env, check=False)
    # The reference itself: every month trained, January promoted first.
    assert all(sequential["chain"][m]["checks"] == "passed" for m in MONTHS), sequential["chain"]
    assert sequential["chain"][MONTHS[0]]["action"] == "promote"
    assert sequential["chain"][MONTHS[0]]["champion"] == "none"
    assert [p.returncode for p in processes] == [0, 0, 0], failed_lines(logs)

    # The instance's storage URL on an external server is read from the environment (its
    # dagster.yaml names the variable, never the password).
    monkeypatch.setenv(STORAGE_URL_ENV, with_database(concurrent_db, DAGSTER_DB))
    windows = dbt_step_windows(dagster_home)
    assert len(windows) == len(MONTHS)
    for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert next_start >= end, "two dbt builds overlapped despite the pool"
    assert outcome(concurrent_db, stores["c"]) == sequential
