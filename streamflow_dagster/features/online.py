"""The fast online write: one month of the marts into Feast's PostgreSQL online tables.

Feast's own `materialize` converts every value in Python and upserts one row per feature with
`executemany`, and it overwrites without comparing timestamps. Here each view's table for the
month is built inside PostgreSQL beside the live one (`online_tables`), two views at a time,
and all views are then swapped in by one short transaction. `store.get_online_features` reads
the result exactly as if Feast had written it (the integration tests compare every byte).

Newest month wins: the online store holds exactly one month, the newest one written (recorded
in features.online_month). An older month is not written, so a backfill never puts old values
online, and a user absent from the newest month has no online features at all.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import psycopg
from psycopg import sql

from ..platform.db import connect
from .online_tables import StagedTable, build_stage, drop_stages
from .schema import FEATURES_SCHEMA, features_ddl
from .specs import ViewSpec

ONLINE_MONTH_TABLE = "online_month"
# One online write at a time: two months written concurrently would race on which one wins.
LOCK_KEY = "streamflow.online_features"
# Views built at the same time, each on its own connection: a build is one CPU-bound backend
# (its index builds too: online_tables.BUILD_PARALLEL_WORKERS), and the reference machine has
# two cores (more only queue).
BUILD_CONNECTIONS = 2
# Online reads hold their locks for milliseconds; waiting longer at the swap means a stuck
# transaction, so give up and retry rather than queue every online read behind it.
SWAP_LOCK_TIMEOUT = "5s"
SWAP_ATTEMPTS = 3


@dataclass(frozen=True)
class OnlineWrite:
    as_of: date
    written: bool  # False: a newer month is online and stays there
    online_as_of: date | None  # the month the online store holds afterwards
    users_by_view: dict[str, int] = field(default_factory=dict)
    rows_written: int = 0  # online table rows: one per user and feature
    seconds: float = 0.0


def materialize_month(
    database_url: str, views: list[ViewSpec], online_schema: str, as_of: date
) -> OnlineWrite:
    """Write month `as_of` of every view online, unless a newer month is already there."""
    if not views:
        raise ValueError("No online feature view is registered: materialize feast_registry first")
    started = time.perf_counter()
    with connect(database_url, service="online store") as conn:
        ensure_online_month_table(conn)
        conn.execute("select pg_advisory_lock(hashtext(%s))", (LOCK_KEY,))
        try:
            # Stage tables a write interrupted by a crash left behind: gone before anything else.
            drop_stages(conn, online_schema)
            newest = online_month(conn)
            if newest is not None and as_of < newest:
                return OnlineWrite(as_of, False, newest, seconds=time.perf_counter() - started)
            try:
                staged = _build_all(database_url, views, online_schema, as_of)
                _swap(conn, online_schema, staged, as_of)
            finally:
                drop_stages(conn, online_schema)
        finally:
            conn.rollback()
            conn.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK_KEY,))
    users = {item.view.name: item.users for item in staged}
    rows = sum(item.users * len(item.view.features) for item in staged)
    return OnlineWrite(as_of, True, as_of, users, rows, time.perf_counter() - started)


def online_month(conn: psycopg.Connection) -> date | None:
    """The month the online store holds, None before the first write."""
    exists = conn.execute("select to_regclass(%s)", (f"{FEATURES_SCHEMA}.{ONLINE_MONTH_TABLE}",))
    if exists.fetchone()[0] is None:
        return None
    newest = conn.execute(sql.SQL("select max(as_of) from {}").format(_state_table()))
    return newest.fetchone()[0]


def _build_all(
    database_url: str, views: list[ViewSpec], schema: str, as_of: date
) -> list[StagedTable]:
    def build(numbered: tuple[int, ViewSpec]) -> StagedTable:
        number, view = numbered
        with connect(database_url, service="online store") as conn:
            return build_stage(conn, view, schema, as_of, number)

    # Largest views first, so the two connections finish at about the same time.
    order = sorted(enumerate(views), key=lambda item: -len(item[1].features))
    with ThreadPoolExecutor(BUILD_CONNECTIONS) as pool:
        built = list(pool.map(build, order))
    return sorted(built, key=lambda item: item.view.name)


def _swap(conn: psycopg.Connection, schema: str, staged: list[StagedTable], as_of: date) -> None:
    """Replace every live table by its stage at once: readers see the old month or the new."""
    live = [sql.Identifier(schema, item.view.online_table) for item in staged]
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("set local lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT))
                )
                conn.execute(
                    sql.SQL("lock table {} in access exclusive mode").format(
                        sql.SQL(", ").join(live)
                    )
                )
                for item, table in zip(staged, live, strict=True):
                    _replace(conn, schema, item, table)
                _record(conn, as_of, {item.view.name: item.users for item in staged})
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as error:
            if attempt == SWAP_ATTEMPTS:
                raise RuntimeError(
                    f"Could not lock the online tables in {schema} after {SWAP_ATTEMPTS} "
                    f"attempts ({error}): a long transaction holds them. End it (see "
                    "pg_stat_activity) and materialize the month again."
                ) from error


def _replace(conn: psycopg.Connection, schema: str, item: StagedTable, table) -> None:
    conn.execute(sql.SQL("drop table {}").format(table))
    conn.execute(
        sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(schema, item.stage), sql.Identifier(item.view.online_table)
        )
    )
    for temporary, name in item.index_renames:
        conn.execute(
            sql.SQL("alter index {} rename to {}").format(
                sql.Identifier(schema, temporary), sql.Identifier(name)
            )
        )


def _state_table() -> sql.Composable:
    return sql.Identifier(FEATURES_SCHEMA, ONLINE_MONTH_TABLE)


def ensure_online_month_table(conn: psycopg.Connection) -> None:
    conn.commit()
    with features_ddl(conn):
        conn.execute(
            sql.SQL(
                "create table if not exists {} (feature_view text primary key, as_of date not "
                "null, users bigint not null, materialized_at timestamptz not null default now())"
            ).format(_state_table())
        )


def _record(conn: psycopg.Connection, as_of: date, users: dict[str, int]) -> None:
    conn.execute(sql.SQL("delete from {}").format(_state_table()))
    for view, count in users.items():
        conn.execute(
            sql.SQL("insert into {} (feature_view, as_of, users) values (%s, %s, %s)").format(
                _state_table()
            ),
            (view, as_of, count),
        )
