"""Where a new MLflow experiment keeps its files, for each kind of MLFLOW_TRACKING_URI."""

from __future__ import annotations

from streamflow_dagster.platform.mlflow_store import resolve_store
from streamflow_dagster.platform.settings import load_settings


def test_a_tracking_database_gets_the_state_folder_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg://u@db:5432/mlflow")
    settings = load_settings()
    assert resolve_store(settings).artifact_root == settings.mlflow_artifacts_dir
    assert settings.mlflow_artifacts_dir.is_relative_to(tmp_path)


def test_a_tracking_server_keeps_its_own_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert resolve_store(load_settings()).artifact_root is None
