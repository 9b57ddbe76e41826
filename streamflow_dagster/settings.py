"""The one place that reads the environment: where state lives and which servers to use.

Everything else asks this module. Local default: an embedded PostgreSQL under
$STREAMFLOW_HOME; production: STREAMFLOW_DATABASE_URL / MLFLOW_TRACKING_URI point elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"

WAREHOUSE_DB = "streamflow"  # raw, staging, marts, Feast offline/online tables
MLFLOW_DB = "mlflow"  # MLflow tracking and registry: its own database


@dataclass(frozen=True)
class Settings:
    home: Path
    landing_dir: Path
    database_url: str | None  # None: use the embedded server
    mlflow_tracking_uri: str | None

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def embedded(self) -> bool:
        return self.database_url is None


def load_settings() -> Settings:
    home = Path(os.environ.get("STREAMFLOW_HOME", ".streamflow")).expanduser().resolve()
    landing = os.environ.get("STREAMFLOW_LANDING_DIR")
    return Settings(
        home=home,
        landing_dir=Path(landing).expanduser().resolve() if landing else home / "landing",
        database_url=os.environ.get("STREAMFLOW_DATABASE_URL") or None,
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
    )
