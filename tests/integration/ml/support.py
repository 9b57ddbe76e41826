"""Shared helpers of the model tests (no tests here): MLflow databases, stored training sets.

An empty MLflow database takes seconds of Alembic migrations, so one migrated database is
made per session and each test gets a copy (CREATE DATABASE ... TEMPLATE, milliseconds).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from streamflow_dagster.platform.db import ensure_database, with_database
from streamflow_dagster.platform.mlflow_store import MlflowStore, sqlalchemy_uri

TEMPLATE_DB = "mlflow_template"
# The stored format of features.training_set: keys, the feature service's 14 features in its
# order (feature_repo/feature_services.py churn_v1), the label.
FEATURES = [
    "net_service",
    "paperless_billing",
    "plan_stream_movies",
    "plan_stream_tv",
    "months_active",
    "monthly_fee",
    "rebuffer_events_7d",
    "unique_devices_30d",
    "watch_hours_30d",
    "skips_7d",
    "avg_session_mins_7d",
    "failed_payments_90d",
    "support_tickets_90d",
    "ticket_avg_resolution_hrs_90d",
]
_FEATURE_FILES = ("subscriptions.csv", "usage_agg_30d.csv", "payments_agg_90d.csv")
_templates: set[str] = set()


def _template(server_url: str) -> None:
    """Create the migrated template once per server (a child process: no pooled connection
    may stay open on a template database)."""
    if server_url in _templates:
        return
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(TEMPLATE_DB))
        )
    ensure_database(server_url, TEMPLATE_DB)
    uri = sqlalchemy_uri(with_database(server_url, TEMPLATE_DB))
    code = (
        "import sys, streamflow_dagster.platform.mlflow_store as m; "
        "m.initialize_schema(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, uri], check=True, capture_output=True)
    _templates.add(server_url)


def fresh_mlflow_store(server_url: str, artifact_root: Path) -> MlflowStore:
    """A migrated, empty MLflow database of its own, and an artifact folder."""
    _template(server_url)
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    return MlflowStore(sqlalchemy_uri(with_database(server_url, name)), artifact_root)


def training_frame(month_folder: Path) -> pd.DataFrame:
    """A demo landing month as features.training_set stores it (as load_training_set reads)."""
    frame = pd.read_csv(month_folder / _FEATURE_FILES[0])
    for name in (*_FEATURE_FILES[1:], "support_agg_90d.csv", "labels.csv"):
        frame = frame.merge(pd.read_csv(month_folder / name), on="user_id")
    frame.insert(0, "as_of", pd.Timestamp(month_folder.name).date())
    return frame[["as_of", "user_id", *FEATURES, "churn_label"]].sort_values("user_id")


def model_asset_resources(database_url: str, store: MlflowStore) -> dict:
    """The resources the feature and model assets need, on a test database and MLflow store."""
    from streamflow_dagster.defs.resources import (
        FeastResource,
        MlflowStoreResource,
        WarehouseResource,
        mlflow_tracking_resource,
    )

    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "feast": FeastResource(),
        "mlflow_store": MlflowStoreResource(
            tracking_uri=store.tracking_uri, artifact_root=str(store.artifact_root)
        ),
        "mlflow": mlflow_tracking_resource,
    }
