"""The local deployment on the real stack: CLI runs go through it, a killed run is cleared.

One STREAMFLOW_HOME with its own embedded PostgreSQL (instance storage in its database
`dagster`), code server and daemon started by `streamflow deploy start`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.instance import DBT_POOL, DEAD_RUN_BOUND_S
from streamflow_dagster.platform.launcher import process_alive, worker_pid

pytestmark = pytest.mark.integration

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
MONTHS = ["2024-01-31", "2024-02-29"]


@pytest.fixture(scope="module")
def deployed(server_home):
    home = server_home("deployed")
    env = {**os.environ, "STREAMFLOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("STREAMFLOW_DATABASE_URL", None)
    generate_landing(home / "landing", users=300, months=len(MONTHS), seed=11)
    (home / "landing" / "2024-02-30").mkdir()
    yield home, env
    subprocess.run([STREAMFLOW, "deploy", "stop"], env=env, check=False)
    subprocess.run([STREAMFLOW, "db", "stop"], env=env, check=False)


def instance_of(env) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def test_cli_runs_go_through_the_deployment(deployed):
    """Both months as ONE run over the range, with the misnamed folder reported by name."""
    home, env = deployed
    done = subprocess.run(
        [STREAMFLOW, "run", "--months", f"{MONTHS[0]}..{MONTHS[1]}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    misnamed = home / "landing" / "2024-02-30"
    assert f"Skipping landing folder {misnamed}: not a month partition" in done.stderr
    assert "not an ISO date" in done.stderr
    assert f"{MONTHS[0]}..{MONTHS[1]} dbt_models: done" in done.stdout
    for month in MONTHS:  # progress per month inside the range's steps
        assert f"{month} churn_model: done" in done.stdout
    with instance_of(env) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="streamflow_monthly"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/asset_partition_range_start"] == MONTHS[0]
        assert run.tags["dagster/asset_partition_range_end"] == MONTHS[1]
        assert run.remote_job_origin.location_name == "streamflow"
        assert run.job_code_origin is not None
        for asset in ("raw_users", "usage_agg_30d_snapshots", "training_set", "churn_scores"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(MONTHS)


def _dbt_children(home: Path) -> list[int]:
    """dbt builds of the second month started by this test's deployment (by their env)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"STREAMFLOW_HOME={home}".encode() not in environ:
                continue
            if b"dbt" in cmd and b"build" in cmd and f"{MONTHS[1]}".encode() in cmd:
                found.append(int(entry.name))
    return found


def test_a_killed_run_is_failed_its_slot_freed_and_dbt_stopped(deployed):
    home, env = deployed
    cli = subprocess.Popen(
        [STREAMFLOW, "run", "--months", MONTHS[1]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with instance_of(env) as instance:
        run = pid = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not _dbt_children(home):
            time.sleep(0.5)
        assert _dbt_children(home), "dbt never started for the second month"
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": MONTHS[1]}))
        pid = worker_pid(instance, run.run_id)
        assert pid and process_alive(pid)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < DEAD_RUN_BOUND_S:
            status = instance.get_run_by_id(run.run_id).status
            slots = instance.event_log_storage.get_concurrency_info(DBT_POOL).claimed_slots
            if status == dg.DagsterRunStatus.FAILURE and not slots and not _dbt_children(home):
                break
            time.sleep(1)
        print(
            f"killed run: failed, slot freed, dbt gone {time.monotonic() - killed_at:.1f} s later"
        )
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(DBT_POOL).claimed_slots
        assert not _dbt_children(home), "dbt outlived its killed run"
    out, _ = cli.communicate(timeout=120)
    assert cli.returncode == 1 and "FAILED" in out, out

    again = subprocess.run(
        [STREAMFLOW, "run", "--months", MONTHS[1]],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert again.returncode == 0, again.stdout + again.stderr
