"""Dagster resources: the warehouse PostgreSQL and the landing folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg

from ..platform.db import connect, connection_env, warehouse_url
from ..platform.settings import Settings, load_settings


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse database: the embedded PostgreSQL, or the server at `database_url`."""

    database_url: str | None = None  # from dg.EnvVar("STREAMFLOW_DATABASE_URL") when set
    home: str | None = None  # STREAMFLOW_HOME for the embedded server

    def _settings(self) -> Settings:
        base = load_settings()
        return Settings(
            home=Path(self.home) if self.home else base.home,
            landing_dir=base.landing_dir,
            database_url=self.database_url,
            mlflow_tracking_uri=base.mlflow_tracking_uri,
        )

    def url(self) -> str:
        return warehouse_url(self._settings())

    def connect(self, **kwargs) -> psycopg.Connection:
        """A connection to the warehouse; unreachable: an error naming the server and the fix."""
        return connect(self.url(), **kwargs)

    def libpq_env(self) -> dict[str, str]:
        """Connection env vars read by dbt's profiles.yml and Feast's feature_store.yaml."""
        return connection_env(self.url())


class LandingResource(dg.ConfigurableResource):
    """The landing folder: one sub-folder per month, named by its AS_OF."""

    path: str

    @property
    def folder(self) -> Path:
        return Path(self.path)
