"""The `features` schema: the platform's own feature tables (training sets, online state)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

FEATURES_SCHEMA = "features"
# Serialises CREATE ... IF NOT EXISTS of parallel runs: two first creations of the same table
# at once fail on PostgreSQL's catalog unique indexes otherwise.
DDL_LOCK_KEY = "streamflow.features.ddl"


@contextmanager
def features_ddl(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction that creates the `features` schema and holds the DDL lock for more."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK_KEY,))
        conn.execute(
            sql.SQL("create schema if not exists {}").format(sql.Identifier(FEATURES_SCHEMA))
        )
        yield
