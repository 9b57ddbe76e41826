"""Connections to the warehouse PostgreSQL: the embedded server, or STREAMFLOW_DATABASE_URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from .embedded_pg import EmbeddedPostgres
from .settings import WAREHOUSE_DB, Settings, load_settings


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.pg_dir)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server at `server_url` if it does not exist yet."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
            except psycopg.errors.DuplicateDatabase:
                pass  # created by a parallel process in the meantime


class WarehouseNotRunning(RuntimeError):
    """The embedded server is the warehouse in use and it is not running."""


def warehouse_url(settings: Settings | None = None) -> str:
    """URL of the warehouse database, looked up only: starts nothing, creates nothing.

    STREAMFLOW_DATABASE_URL when set, else the running embedded server's; `start_warehouse()`
    is the one function that starts the embedded server.
    """
    settings = settings or load_settings()
    if settings.database_url:
        return settings.database_url
    status = embedded_server(settings).status()
    if not status.running:
        raise WarehouseNotRunning(
            f"The embedded PostgreSQL under {settings.pg_dir} is not running: start it with "
            "`streamflow db start` (every `streamflow` command and every Dagster run starts "
            "it too), or set STREAMFLOW_DATABASE_URL to use another server"
        )
    return status.url(WAREHOUSE_DB)


def start_warehouse(settings: Settings | None = None) -> str:
    """Make the warehouse ready and return its URL: starts the embedded server (when it is
    the one in use) and creates its database. Idempotent and safe across processes."""
    settings = settings or load_settings()
    if settings.database_url:
        return settings.database_url
    status = embedded_server(settings).start()
    ensure_database(status.url("postgres"), WAREHOUSE_DB)
    return status.url(WAREHOUSE_DB)


def connection_env(url: str) -> dict[str, str]:
    """The libpq-style pieces of a URL, as the env vars dbt's and Feast's configs read."""
    parts = urlsplit(url)
    return {
        "STREAMFLOW_PG_HOST": parts.hostname or "127.0.0.1",
        "STREAMFLOW_PG_PORT": str(parts.port or 5432),
        "STREAMFLOW_PG_USER": parts.username or "postgres",
        "STREAMFLOW_PG_PASSWORD": parts.password or "",
        "STREAMFLOW_PG_DBNAME": parts.path.lstrip("/") or WAREHOUSE_DB,
        # Feast defaults to sslmode=require, which the embedded server (no SSL) refuses.
        "STREAMFLOW_PG_SSLMODE": parse_qs(parts.query).get("sslmode", ["prefer"])[0],
    }


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url or warehouse_url(), **kwargs)
