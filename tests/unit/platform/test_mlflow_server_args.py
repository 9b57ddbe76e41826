"""`streamflow mlflow-server`'s command line and the client-side artifact-location rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamflow_dagster.cli.main import main
from streamflow_dagster.platform import mlflow_server
from streamflow_dagster.platform.mlflow_store import is_local_location
from streamflow_dagster.platform.settings import load_settings

BACKEND = "postgresql+psycopg://mlflow:s3cret@db.internal:5432/mlflow"


@pytest.mark.parametrize(
    ("location", "local"),
    [
        (None, True),
        ("", True),
        ("/srv/mlflow", True),
        ("file:///srv/mlflow/1", True),
        ("mlflow-artifacts:/1", False),
        ("s3://bucket/1", False),
        ("http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/1", False),
    ],
)
def test_which_artifact_locations_are_local(location, local):
    assert is_local_location(location) is local


def test_the_server_proxies_artifacts_and_keeps_the_password_off_its_command_line(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", BACKEND)  # a database: the server's backend
    monkeypatch.setattr(mlflow_server, "initialize_schema", lambda uri: None)
    command = mlflow_server.server_command(
        str(tmp_path / "artifacts"), port=5055, workers=3, settings=load_settings()
    )
    argv = command.argv
    assert argv[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert "--serve-artifacts" in argv
    assert argv[argv.index("--default-artifact-root") + 1] == "mlflow-artifacts:/"
    destination = argv[argv.index("--artifacts-destination") + 1]
    assert (
        destination == (tmp_path / "artifacts").as_uri() and Path(tmp_path / "artifacts").is_dir()
    )
    assert argv[argv.index("--port") + 1] == "5055" and argv[argv.index("--workers") + 1] == "3"
    assert not any("s3cret" in arg for arg in argv)
    assert command.env["MLFLOW_BACKEND_STORE_URI"] == BACKEND
    assert "MLFLOW_TRACKING_URI" not in command.env
    assert "s3cret" not in command.display() and "***" in command.display()


def test_a_destination_without_a_bucket_is_refused():
    with pytest.raises(mlflow_server.MlflowServerError, match="no bucket named"):
        mlflow_server.check_bucket("s3:///path")


def test_the_command_needs_a_destination():
    done = CliRunner().invoke(main, ["mlflow-server"])
    assert done.exit_code == 2 and "--artifacts-destination" in done.output
