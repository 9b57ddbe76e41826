"""The UI URLs links are built from: defaults, the variables, the earlier variable name."""

from __future__ import annotations

from streamflow_dagster.platform.settings import load_settings


def test_defaults_are_the_local_uis(monkeypatch):
    for name in ("STREAMFLOW_DAGSTER_UI_URL", "STREAMFLOW_UI_URL", "STREAMFLOW_MLFLOW_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.ui_url, settings.mlflow_ui_url) == (
        "http://127.0.0.1:3000",
        "http://127.0.0.1:5000",
    )


def test_variables_win_and_lose_their_trailing_slash(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_UI_URL", "http://old:3000")
    monkeypatch.setenv("STREAMFLOW_DAGSTER_UI_URL", "https://dagster.example/")
    monkeypatch.setenv("STREAMFLOW_MLFLOW_UI_URL", "https://mlflow.example/")
    settings = load_settings()
    assert settings.ui_url == "https://dagster.example"
    assert settings.mlflow_ui_url == "https://mlflow.example"
    monkeypatch.delenv("STREAMFLOW_DAGSTER_UI_URL")
    assert load_settings().ui_url == "http://old:3000"  # the earlier name still counts
