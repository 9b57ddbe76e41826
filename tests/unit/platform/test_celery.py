"""The executor profile's settings, and the Celery config the run worker and workers share."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest
import yaml

from streamflow_dagster.platform import celery, deployment
from streamflow_dagster.platform.settings import (
    DEFAULT_CELERY_WORKERS,
    Settings,
    load_executor_settings,
)

BROKER = "redis://:secret@broker.example:6379/0"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in (
        "STREAMFLOW_EXECUTOR",
        "STREAMFLOW_CELERY_BROKER_URL",
        "STREAMFLOW_CELERY_BACKEND_URL",
        "STREAMFLOW_CELERY_WORKERS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_default_is_in_process_with_no_broker():
    settings = load_executor_settings()
    assert (settings.executor, settings.celery, settings.celery_broker_url) == (
        "in_process",
        False,
        None,
    )
    assert celery.executor_definition(settings).name == "in_process"


def test_celery_needs_a_broker_and_names_the_variable(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="STREAMFLOW_CELERY_BROKER_URL"):
        load_executor_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STREAMFLOW_EXECUTOR", "kubernetes"),
        ("STREAMFLOW_CELERY_WORKERS", "-1"),
        ("STREAMFLOW_CELERY_WORKERS", "1.5"),
        ("STREAMFLOW_CELERY_WORKERS", "two"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch, name, value):
    monkeypatch.setenv("STREAMFLOW_CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        load_executor_settings()


def test_the_celery_profile_and_its_worker_config(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMFLOW_EXECUTOR", "Celery")
    monkeypatch.setenv("STREAMFLOW_CELERY_BROKER_URL", BROKER)
    settings = load_executor_settings()
    assert settings.celery and settings.celery_workers == DEFAULT_CELERY_WORKERS
    assert settings.celery_backend_url == BROKER  # results over the broker by default
    assert celery.executor_definition(settings).name == "celery"

    path = celery.write_worker_config(tmp_path / "celery.yaml", settings)
    text = path.read_text()
    assert "secret" not in text  # the yaml names the variable, never the URL
    config = yaml.safe_load(text)["execution"]["config"]
    assert config["broker"] == {"env": "STREAMFLOW_CELERY_BROKER_URL"}
    assert config["backend"] == {"env": "STREAMFLOW_CELERY_BROKER_URL"}
    # The worker CLI validates the same yaml against the executor's schema.
    from dagster_celery.cli import get_validated_config

    assert get_validated_config(str(path))["broker"] == BROKER

    monkeypatch.setenv("STREAMFLOW_CELERY_BACKEND_URL", "redis://results.example:6379/1")
    separate = celery.celery_config(load_executor_settings())
    assert separate["backend"] == {"env": "STREAMFLOW_CELERY_BACKEND_URL"}


def test_a_worker_takes_one_step_at_a_time_from_dagsters_queue(tmp_path):
    args = celery.worker_args(tmp_path / "celery.yaml", celery.worker_name(2))
    assert args[1:3] == ["worker", "start"]
    assert args[args.index("-n") + 1] == "celery-worker-2"
    assert args[args.index("-q") + 1] == celery.QUEUE
    assert "--concurrency=1" in args[args.index("--") :]


def test_workers_asked_for_without_the_celery_profile_are_refused(tmp_path):
    settings = Settings(
        home=tmp_path, landing_dir=tmp_path / "landing", database_url=None, mlflow_tracking_uri=None
    )
    with pytest.raises(deployment.DeploymentError, match="STREAMFLOW_EXECUTOR=celery"):
        deployment._start_celery_workers(settings, 2)
    deployment._start_celery_workers(settings, None)  # none asked for: nothing to start
    assert not deployment.celery_config_file(settings).exists()


def test_status_lists_the_started_workers_in_their_order(tmp_path):
    settings = Settings(
        home=tmp_path, landing_dir=tmp_path / "landing", database_url=None, mlflow_tracking_uri=None
    )
    folder = deployment.deployment_dir(settings)
    folder.mkdir(parents=True)
    for index in (10, 2, 1):
        (folder / f"{celery.worker_name(index)}.json").write_text('{"pid": 999999999}')
    names = [p.name for p in deployment.status(settings)]
    assert names[-3:] == ["celery-worker-1", "celery-worker-2", "celery-worker-10"]
    assert not any(p.running for p in deployment.status(settings))


def test_stop_waits_for_the_whole_group_not_only_its_leader(monkeypatch):
    """A `celery` child outlives its `dagster-celery` parent: stop must not leave it."""
    monkeypatch.setattr(deployment, "STOP_GRACE_S", 1)
    # The leader exits on SIGTERM; its child ignores SIGTERM (like a worker mid-step).
    leader = subprocess.Popen(
        ["sh", "-c", "(trap '' TERM; exec sleep 60) & exec sleep 60"], start_new_session=True
    )
    try:
        time.sleep(0.5)
        assert deployment._group_alive(leader.pid)
        deployment._terminate(leader.pid)
        assert not deployment._group_alive(leader.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_a_bad_profile_stops_deploy_start_before_any_process(monkeypatch, tmp_path):
    settings = Settings(
        home=tmp_path, landing_dir=tmp_path / "landing", database_url=None, mlflow_tracking_uri=None
    )
    monkeypatch.setenv("STREAMFLOW_EXECUTOR", "celery")
    with pytest.raises(deployment.DeploymentError, match="STREAMFLOW_CELERY_BROKER_URL"):
        deployment.start(settings)
    assert not deployment.deployment_dir(settings).exists()
