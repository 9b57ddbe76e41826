"""The generated instance config and the pure helpers of the deployment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from streamflow_dagster.landing.months import landed_months, misnamed_months
from streamflow_dagster.platform import deployment
from streamflow_dagster.platform.instance import STORAGE_URL_ENV, render_dagster_yaml
from streamflow_dagster.platform.launcher import process_alive
from streamflow_dagster.platform.settings import load_settings


def test_embedded_storage_url_is_written_and_an_external_one_is_not():
    embedded = yaml.safe_load(
        render_dagster_yaml("postgresql://u@127.0.0.1:5/dagster", secret=False)
    )
    assert embedded["storage"]["postgres"]["postgres_url"] == "postgresql://u@127.0.0.1:5/dagster"
    text = render_dagster_yaml("postgresql://u:s3cret@db/dagster", secret=True)
    assert "s3cret" not in text
    assert yaml.safe_load(text)["storage"]["postgres"]["postgres_url"] == {"env": STORAGE_URL_ENV}
    config = yaml.safe_load(text)
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    # A launch the code server is too busy to answer goes back to the queue, not to FAILED.
    assert config["run_coordinator"]["config"]["max_user_code_failure_retries"] >= 1


def test_deployment_processes_wait_longer_than_60_s_for_a_run_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv(deployment.GRPC_TIMEOUT_ENV, raising=False)
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path))
    env = deployment._environment(load_settings())
    assert int(env[deployment.GRPC_TIMEOUT_ENV]) > 60
    monkeypatch.setenv(deployment.GRPC_TIMEOUT_ENV, "90")  # a user's own setting is kept
    assert deployment._environment(load_settings())[deployment.GRPC_TIMEOUT_ENV] == "90"


def test_misnamed_month_folders_are_named_with_their_reason(tmp_path):
    for name in ("2024-01-31", "2024-02-30", "2024-03-15"):
        (tmp_path / name).mkdir()
    assert landed_months(tmp_path) == ["2024-01-31"]
    reasons = dict(misnamed_months(tmp_path))
    assert set(reasons) == {"2024-02-30", "2024-03-15"}
    assert "not an ISO date" in reasons["2024-02-30"]
    assert "last day of its month" in reasons["2024-03-15"]


def test_a_reaped_or_zombie_process_is_not_alive():
    assert process_alive(os.getpid())
    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        pass  # exited, not yet reaped: a zombie
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)
