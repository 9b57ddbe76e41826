"""Connections to the warehouse PostgreSQL: the embedded server, or STREAMFLOW_DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from .embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from .settings import CONNECT_TIMEOUT_S, WAREHOUSE_DB, Settings, load_settings


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL cannot be reached: says which server and what to do, not a library trace."""


def unavailable(url: str, error: Exception, service: str = "warehouse") -> DatabaseUnavailable:
    parts = urlsplit(url)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    settings = load_settings()
    advice = (
        "Check the server at STREAMFLOW_DATABASE_URL is up and reachable"
        if settings.database_url
        else "`streamflow db status` tells whether the embedded server runs and "
        "`streamflow db start` starts it"
    )
    return DatabaseUnavailable(
        f"PostgreSQL ({service} database, {parts.hostname}:{parts.port}) is unreachable: "
        f"{first_line}. {advice}; then run the month again (`streamflow run --months <AS_OF>`)."
    )


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.pg_dir)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server at `server_url` if it does not exist yet.

    Processes that start together (three `streamflow run` of different months) all find the
    database missing; their CREATE DATABASE then collide in the catalog, as DuplicateDatabase
    or, when both pass the catalog's check at once, as a UniqueViolation on
    pg_database_datname_index (seen in CI). A server-side advisory lock makes check and create
    one step for every process on every machine that uses this server.
    """
    with connect(server_url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(hashtext(%s))", (f"streamflow:create:{database}",))
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # created by a process that does not take the lock (an older StreamFlow)
        # The lock is the session's: closing the connection releases it.


class WarehouseNotRunning(RuntimeError):
    """The embedded server is the warehouse in use and it is not running."""


# SQLSTATEs that mean the server went away (class 08: connection exception; 57P0x: shut down,
# crashed, starting up). Other OperationalErrors (a lock timeout) are the statement's own.
SERVER_GONE = ("08", "57P01", "57P02", "57P03")


def server_gone(error: psycopg.OperationalError) -> bool:
    """Whether `error` says the server is unreachable or went away (no SQLSTATE: the client
    lost the connection)."""
    return error.sqlstate is None or error.sqlstate.startswith(SERVER_GONE)


@contextmanager
def readable_failures(url: str | None = None, service: str = "warehouse") -> Iterator[None]:
    """A database that cannot be reached, went away mid-statement or does not start becomes one
    DatabaseUnavailable saying which server and what to do, not a library traceback."""
    try:
        yield
    except EmbeddedPostgresError as error:
        raise DatabaseUnavailable(str(error)) from None
    except psycopg.OperationalError as error:
        if not server_gone(error):
            raise
        raise unavailable(url or _url_of(error), error, service) from None


def _url_of(error: psycopg.OperationalError) -> str:
    """host:port of the failed connection, as far as the error still knows it."""
    try:
        host, port = error.pgconn.host.decode(), error.pgconn.port.decode()
    except (AttributeError, psycopg.Error):  # no connection object, or already released
        return "postgresql://?:?/"
    return f"postgresql://{host}:{port}/"


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


def connect(url: str | None = None, service: str = "warehouse", **kwargs) -> psycopg.Connection:
    """A connection with a bounded connect time; DatabaseUnavailable when it cannot be made."""
    url = url or warehouse_url()
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as error:
        raise unavailable(url, error, service) from None
