"""The local deployment on the real stack: CLI runs go through it, a killed run is cleared,
a month that lands while it is up is run by its sensor and its failed check alerted.

One STREAMFLOW_HOME with its own embedded PostgreSQL (instance storage in its database
`dagster`), code server and daemon started by `streamflow deploy start`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.storage.tags import PARTITION_NAME_TAG, SENSOR_NAME_TAG

from streamflow_dagster.alerts.model import CHECK_FAILED
from streamflow_dagster.landing.completeness import write_manifest
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.deployment import CODE_SERVER, DAEMON, LOCATION_NAME, WEBSERVER
from streamflow_dagster.platform.instance import DBT_POOL, DEAD_RUN_BOUND_S
from streamflow_dagster.platform.launcher import process_alive, worker_pid
from tests.e2e.conftest import make_month_bad

# Each test runs whole months through the deployment: over the default 600 s in CI under load
# (three workers on two cores; the suite took 63 min there).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
MONTHS = ["2024-01-31", "2024-02-29"]
NEW_MONTH = "2024-03-31"  # lands while the deployment is up, with bad subscriptions
SEED, USERS = 11, 300


@pytest.fixture(scope="module")
def deployed(server_home):
    home = server_home("deployed")
    env = {**os.environ, "STREAMFLOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("STREAMFLOW_DATABASE_URL", None)
    generate_landing(home / "landing", users=USERS, months=len(MONTHS), seed=SEED)
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deploy_status(env) -> dict[str, int]:
    """Running process name -> pid, as `streamflow deploy status` prints them."""
    done = subprocess.run(
        [STREAMFLOW, "deploy", "status"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.findall(r"^(\S+) +running \(pid (\d+)", done.stdout, flags=re.MULTILINE)
    return {name: int(pid) for name, pid in found}


def _wait(what: str, bound_s: float, probe):
    """probe() until it returns something truthy; fail naming `what` after `bound_s`."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(2)
    pytest.fail(f"{what}: not within {bound_s:.0f} s")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _land_bad_month(home: Path) -> None:
    """The month after the fixture's, from the same generator run, whose subscriptions fail
    `reject_rate`: written whole in a staging folder, then renamed into landing at once."""
    staging = home / "staging"
    generate_landing(staging, users=USERS, months=len(MONTHS) + 1, seed=SEED)
    folder = staging / NEW_MONTH
    make_month_bad(folder / "subscriptions.csv")
    write_manifest(folder)  # last, as an exporter would: a complete month with bad content
    folder.rename(home / "landing" / NEW_MONTH)
    shutil.rmtree(staging)


def test_the_deployment_runs_a_landed_month_and_alerts_its_failed_check(deployed):
    """Code server, daemon and webserver as separate processes over PostgreSQL storage; a
    month landed without any CLI call is run by the daemon's landing sensor and its failed
    check recorded in ops.alerts by the alert sensor."""
    home, env = deployed
    ui_port = _free_port()
    started = subprocess.run(
        [STREAMFLOW, "deploy", "start", "--ui", str(ui_port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    pids = _deploy_status(env)
    assert set(pids) == {CODE_SERVER, DAEMON, WEBSERVER}, pids
    assert len(set(pids.values())) == 3, f"not three separate processes: {pids}"
    for name, pid in pids.items():
        assert process_alive(pid), f"{name} (pid {pid}) is not running"
        assert os.getsid(pid) == pid, f"{name} (pid {pid}) is not started in its own session"
    server_info = f"http://127.0.0.1:{ui_port}/server_info"
    asked = time.monotonic()
    _wait(f"the webserver answering {server_info}", 300, lambda: _answers(server_info))
    print(f"webserver answered {time.monotonic() - asked:.0f} s after `deploy start --ui`")

    with instance_of(env) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        landed_at = time.time()
        _land_bad_month(home)

        def sensor_runs():
            return instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_NAME_TAG: NEW_MONTH}))

        # The landing sensor ticks every 30 s; the run waits in the queue behind nothing.
        (run,) = _wait(f"a run for {NEW_MONTH} launched by the landing sensor", 240, sensor_runs)
        print(f"sensor launched {run.run_id} {time.time() - landed_at:.0f} s after landing")
        assert run.job_name == "streamflow_monthly"
        assert run.tags[SENSOR_NAME_TAG] == "landing_sensor"
        assert run.tags[PARTITION_NAME_TAG] == NEW_MONTH
        assert run.remote_job_origin.location_name == LOCATION_NAME
        assert run.job_code_origin is not None

        def finished():
            current = instance.get_run_by_id(run.run_id)
            return current if current.is_finished else None

        ended = _wait(f"run {run.run_id} of {NEW_MONTH} to finish", 600, finished)
        # The blocking ERROR check withholds the month: the run fails after its landing checks.
        assert ended.status == dg.DagsterRunStatus.FAILURE
        assert [r.run_id for r in sensor_runs()] == [run.run_id], "the month ran more than once"
        print(f"run {ended.status.value} {time.time() - landed_at:.0f} s after landing")

    url = subprocess.run(
        [STREAMFLOW, "db", "url"], env=env, capture_output=True, text=True, timeout=120
    )
    assert url.returncode == 0, url.stderr

    def check_alerts():
        with psycopg.connect(url.stdout.strip()) as conn:
            if not conn.execute("select to_regclass('ops.alerts')").fetchone()[0]:
                return None
            return conn.execute(
                "select kind, asset, check_name, severity, run_id from ops.alerts"
                " where partition = %s and check_name is not null",
                (NEW_MONTH,),
            ).fetchall()

    # The alert sensor ticks every 30 s, reading the runs that ended since its last tick.
    rows = _wait(f"the alert for {NEW_MONTH}'s failed check in ops.alerts", 240, check_alerts)
    print(f"alert recorded {time.time() - landed_at:.0f} s after landing: {rows}")
    assert (CHECK_FAILED, "raw_subscriptions", "reject_rate", "ERROR", run.run_id) in rows
