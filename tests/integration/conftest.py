"""Fixtures for integration tests: the dbt marts' contract, filled without running dbt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from streamflow_dagster.landing.demo_data import generate_landing

# marts.* exactly as the dbt project's contract states them (one row per user_id and as_of).
MART_COLUMNS = {
    "subscriptions_profile_snapshots": {
        "signup_date": "date",
        "user_gender": "text",
        "user_is_senior": "boolean",
        "has_family": "boolean",
        "has_dependents": "boolean",
        "months_active": "bigint",
        "contract_type": "text",
        "paperless_billing": "boolean",
        "monthly_fee": "double precision",
        "total_paid": "double precision",
        "net_service": "text",
        "plan_stream_tv": "boolean",
        "plan_stream_movies": "boolean",
        "add_on_security": "boolean",
        "add_on_backup": "boolean",
        "add_on_device_protect": "boolean",
        "add_on_support": "boolean",
    },
    "usage_agg_30d_snapshots": {
        "watch_hours_30d": "double precision",
        "avg_session_mins_7d": "double precision",
        "unique_devices_30d": "bigint",
        "skips_7d": "bigint",
        "rebuffer_events_7d": "bigint",
    },
    "payments_agg_90d_snapshots": {"failed_payments_90d": "bigint"},
    "support_agg_90d_snapshots": {
        "support_tickets_90d": "bigint",
        "ticket_avg_resolution_hrs_90d": "double precision",
    },
    "customer_profile_snapshots": {
        "contract_type": "text",
        "add_on_security": "boolean",
        "add_on_backup": "boolean",
        "add_on_device_protect": "boolean",
        "add_on_support": "boolean",
        "user_is_senior": "boolean",
        "has_family": "boolean",
        "has_dependents": "boolean",
        "total_paid": "double precision",
        "add_on_count": "bigint",
        "paid_per_month_active": "double precision",
        "fee_above_average": "double precision",
    },
    "churn_labels": {"churn_label": "boolean"},
}
# Landing file(s) each mart is made of in the demo data.
MART_FILES = {
    "subscriptions_profile_snapshots": ("subscriptions.csv", "users.csv"),
    "usage_agg_30d_snapshots": ("usage_agg_30d.csv",),
    "payments_agg_90d_snapshots": ("payments_agg_90d.csv",),
    "support_agg_90d_snapshots": ("support_agg_90d.csv",),
    "customer_profile_snapshots": ("subscriptions.csv", "users.csv"),
    "churn_labels": ("labels.csv",),
}
ADD_ONS = ["add_on_security", "add_on_backup", "add_on_device_protect", "add_on_support"]


def create_marts(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists marts")
    for table, columns in MART_COLUMNS.items():
        definition = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in {"user_id": "text", "as_of": "date", **columns}.items()
        )
        conn.execute(
            sql.SQL("create table marts.{} ({})").format(sql.Identifier(table), definition)
        )
    conn.commit()


def insert_rows(conn: psycopg.Connection, table: str, rows: pd.DataFrame) -> None:
    """COPY rows (with user_id and as_of) into marts.<table>; NaN and NA become NULL."""
    columns = list(rows.columns)
    copy = sql.SQL("copy marts.{} ({}) from stdin").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(copy) as out:
        for record in rows.itertuples(index=False):
            out.write_row([_plain(value) for value in record])
    conn.commit()


def _plain(value):
    """A Python value psycopg adapts: NULL for NaN/NA, numpy scalars as Python numbers."""
    if pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def load_landing_month(conn: psycopg.Connection, folder: Path, as_of: str) -> None:
    """One demo landing month into the marts, as the dbt models would shape it."""
    for table, files in MART_FILES.items():
        if not (folder / files[0]).exists():
            continue  # labels arrive late
        frame = pd.read_csv(folder / files[0])
        for extra in files[1:]:
            frame = frame.merge(pd.read_csv(folder / extra), on="user_id", how="left")
        frame.insert(1, "as_of", as_of)
        if table == "customer_profile_snapshots":
            frame = with_derived_customer_features(frame)
        insert_rows(conn, table, frame[["user_id", "as_of", *MART_COLUMNS[table]]])


def with_derived_customer_features(frame: pd.DataFrame) -> pd.DataFrame:
    """customer_profile_snapshots' derived columns, as its dbt model computes them (the dbt
    unit tests pin that SQL; the demo's landing files hold booleans as true/false text)."""
    flags = frame[ADD_ONS].astype(str).apply(lambda c: c.str.lower().isin(["true", "yes", "1"]))
    frame[ADD_ONS] = flags
    frame["add_on_count"] = flags.sum(axis=1)
    tenure = frame["months_active"].where(frame["months_active"] > 0)
    frame["paid_per_month_active"] = frame["total_paid"] / tenure
    frame["fee_above_average"] = frame["monthly_fee"] - frame["paid_per_month_active"]
    return frame


@pytest.fixture
def marts_url(database_url) -> str:
    """A fresh database with empty marts.* tables."""
    with psycopg.connect(database_url) as conn:
        create_marts(conn)
    return database_url


@pytest.fixture(scope="session")
def demo_landing(tmp_path_factory) -> tuple[Path, list[str]]:
    """Three demo months of 300 users (deterministic)."""
    folder = tmp_path_factory.mktemp("features-landing")
    summaries = generate_landing(folder, users=300, months=3, seed=11)
    return folder, [s.as_of.isoformat() for s in summaries]


@pytest.fixture
def demo_marts(marts_url, demo_landing) -> tuple[str, list[str]]:
    """The marts filled with the three demo months; the newest month's labels not landed."""
    folder, months = demo_landing
    with psycopg.connect(marts_url) as conn:
        for month in months:
            load_landing_month(conn, folder / month, month)
        conn.execute("delete from marts.churn_labels where as_of = %s", (months[-1],))
        conn.commit()
    return marts_url, months
