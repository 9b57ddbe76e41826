"""The Celery executor profile on the real stack: months equal to the default executor's.

The same landing months twice, each in its own database and MLflow registry: in process with
the default executor (the reference), and through the local deployment under
STREAMFLOW_EXECUTOR=celery with a real Redis broker (Debian's redis-server) and two Celery
workers started by `streamflow deploy start --celery-workers 2`, the months submitted as two
`streamflow run` processes at once. Every step of both runs must have run on a Celery worker,
both workers must have taken steps, the two dbt builds must not overlap (the `dbt_warehouse`
pool, claimed by the run worker before it sends the dbt task), and marts, training sets,
scores, model metrics, decisions and aliases must equal the reference's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from streamflow_dagster.defs.jobs import MONTHLY_JOB
from streamflow_dagster.defs.month_runs import claim_months
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.celery import worker_name
from streamflow_dagster.platform.db import with_database
from streamflow_dagster.platform.instance import DAGSTER_DB, STORAGE_URL_ENV
from streamflow_dagster.platform.mlflow_store import prepare_store
from tests.integration.defs.test_backfill_concurrency import (
    dbt_step_time,
    new_database,
    outcome,
    run_in_process,
)
from tests.integration.ml.support import fresh_mlflow_store
from tests.servers import RedisServer

# Two months twice over, through dbt, Feast and MLflow: the reference alone exceeded the
# default 600 s on this machine under load ~35.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

MONTHS = ["2024-01-31", "2024-02-29"]
USERS = 800  # every month trains (at least 20 churners per split), and stays cheap
STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
CELERY_STEP = "in celery worker"  # dagster-celery's engine event when a worker takes a step


def streamflow(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STREAMFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def run_report(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict:
    """Which worker took each step of a run, when its dbt step ran, when the run ran."""
    events = instance.all_logs(run.run_id)
    workers, steps = {}, set()
    for e in events:
        if not e.dagster_event:
            continue
        if e.dagster_event.event_type_value == "STEP_START":
            steps.add(e.step_key)
        if not e.dagster_event.is_engine_event:  # engine_event_data asserts the type
            continue
        data = e.dagster_event.engine_event_data
        # the worker reports it with report_engine_event: the text is the event's message
        if data and CELERY_STEP in (e.dagster_event.message or ""):
            workers[e.step_key] = data.metadata["Celery worker"].value
    stats = instance.get_run_stats(run.run_id)
    return {
        "steps": steps,
        "workers": workers,
        "dbt": (dbt_step_time(events, "STEP_START"), dbt_step_time(events, "STEP_SUCCESS")),
        "run": (stats.start_time, stats.end_time),
    }


def test_celery_months_equal_default_executor_months(
    tmp_path, server_home, pg_server, database_url, monkeypatch
):
    reference_landing = tmp_path / "reference-landing"
    generate_landing(reference_landing, users=USERS, months=len(MONTHS), seed=5)
    server = pg_server.url("postgres")
    stores = {name: fresh_mlflow_store(server, tmp_path / f"mlflow-{name}") for name in "dc"}

    run_in_process(database_url, reference_landing, stores["d"], MONTHS)
    reference = outcome(database_url, stores["d"])
    assert all(reference["chain"][m]["checks"] == "passed" for m in MONTHS), reference["chain"]

    landing = tmp_path / "landing"  # filled once its months are claimed for the CLI
    celery_db = new_database(pg_server, database_url, "celery")
    prepare_store(stores["c"])  # its experiment keeps its artifacts under the test's folder
    home = server_home("celery")
    dagster_home = home / "dagster"
    with RedisServer(tmp_path / "redis") as redis:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_CELERY_")},
            "STREAMFLOW_DATABASE_URL": celery_db,
            "STREAMFLOW_LANDING_DIR": str(landing),
            "STREAMFLOW_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            "MLFLOW_TRACKING_URI": stores["c"].tracking_uri,
            "STREAMFLOW_EXECUTOR": "celery",
            "STREAMFLOW_CELERY_BROKER_URL": redis.url,
        }
        try:
            started = streamflow(env, "deploy", "start", "--celery-workers", "2")
            assert started.returncode == 0, started.stdout + started.stderr
            for name in (worker_name(1), worker_name(2)):
                assert f"{name} running" in " ".join(started.stdout.split()), started.stdout
            # The months are claimed for the CLI before they land, as `streamflow run` claims
            # them before it starts a deployment: otherwise the landing sensor's first tick can
            # submit both months itself, racing the two CLI runs (4 runs, seen in CI). (Stopping
            # the sensor with `dagster sensor stop` raced the daemon creating its state.)
            monkeypatch.setenv(STORAGE_URL_ENV, with_database(celery_db, DAGSTER_DB))
            with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                claim_months(instance, MONTHS)
            shutil.copytree(reference_landing, landing)
            cli = [STREAMFLOW, "run", "--months"]
            processes = [
                subprocess.Popen(
                    [*cli, m], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
                for m in MONTHS
            ]
            outputs = [p.communicate(timeout=900)[0] for p in processes]
            assert [p.returncode for p in processes] == [0, 0], "\n".join(
                o[-3000:] for o in outputs
            )
        finally:  # the deployment (workers included) outlives the commands
            streamflow(env, "deploy", "stop", timeout=120)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = [r for r in instance.get_runs() if r.job_name == MONTHLY_JOB]
        reports = [run_report(instance, r) for r in runs]
    assert len(reports) == len(MONTHS)
    for report in reports:
        # Every step of the run was a Celery task; none ran in the run worker itself.
        assert report["steps"] and report["steps"] == set(report["workers"]), report
    hosts = {w.split("@", 1)[0] for r in reports for w in r["workers"].values()}
    assert hosts == {worker_name(1), worker_name(2)}, reports

    # The runs overlapped (so their dbt builds could have), and the pool kept the builds apart.
    (a_start, a_end), (b_start, b_end) = sorted(r["run"] for r in reports)
    assert b_start < a_end, "the two runs did not overlap: the pool was not put to the test"
    (_, first_end), (second_start, _) = sorted(r["dbt"] for r in reports)
    assert second_start >= first_end, "two dbt builds overlapped under the Celery executor"

    assert outcome(celery_db, stores["c"]) == reference
