"""Building one of Feast's PostgreSQL online tables for a month, beside the live one.

A stage table gets the live table's columns, the month's rows (INSERT ... SELECT with the
encoders of `encoding`) and then every index Feast created on the live table, under temporary
names; `online.py` swaps it in. Building indexes after the load is several times faster than
upserting into an indexed table, which is what Feast's own materialize does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from . import encoding
from .specs import ViewSpec

STAGE_PREFIX = "streamflow_stage_"
PG_WITH_BYTEA_REVERSE = 180000  # server_version_num from which reverse(bytea) exists
# Memory for the month's CTE: 1,000,000 users take about 100 MB, which then stays in memory
# instead of spilling to a temporary file.
BUILD_WORK_MEM = "256MB"
# Each index is built by its own backend alone. `online.py` already runs one build per core;
# PostgreSQL's parallel index builds (two workers per index by default, GIN ones too since 18)
# then only share the same cores, split maintenance_work_mem three ways and merge their sorts
# back: at 1,000,000 users, without them the step wrote half the temporary files and used
# 215 instead of 229 PostgreSQL CPU-s (BENCHMARKS.md, bench/bench_online_write.py).
BUILD_PARALLEL_WORKERS = 0


@dataclass(frozen=True)
class StagedTable:
    view: ViewSpec
    stage: str  # the stage table, in the online schema
    index_renames: list[tuple[str, str]]  # (stage index, Feast's index name)
    users: int


def stage_name(number: int) -> str:
    return f"{STAGE_PREFIX}{number}"


def month_rows_query(view: ViewSpec, has_bytea_reverse: bool) -> sql.Composable:
    """SELECT entity_key, feature_name, value, value_text of month %(as_of)s of one view.

    The month is read once into a CTE (entity key computed once per user, columns cast to the
    declared Feast type, as Feast converts source values to it), then one UNION ALL branch per
    feature: plain projections PostgreSQL compiles once. (A LATERAL VALUES list is compiled
    again for every source row, and one scan of the mart per feature costs more than the CTE.)
    """
    key = sql.Identifier("src", view.join_key)
    columns = [
        sql.SQL("src.{}::{} as {}").format(
            sql.Identifier(name), encoding.sql_cast(kind), sql.Identifier(name)
        )
        for name, kind in view.features
    ]
    branches = [
        sql.SQL(
            "select m.entity_key, {name}::text as feature_name, {value} as value, "
            "{text} as value_text from m"
        ).format(
            name=sql.Literal(name),
            value=encoding.value_bytes(kind, sql.Identifier("m", name), has_bytea_reverse),
            text=encoding.value_text(kind, sql.Identifier("m", name)),
        )
        for name, kind in view.features
    ]
    return sql.SQL(
        "with m as materialized (select {entity_key} as entity_key, {columns} from {source} src "
        "where src.{ts} = %(as_of)s and {key} is not null) {branches}"
    ).format(
        entity_key=encoding.entity_key(view.join_key, key),
        columns=sql.SQL(", ").join(columns),
        source=view.source_sql(),
        ts=sql.Identifier(view.timestamp_field),
        key=key,
        branches=sql.SQL(" union all ").join(branches),
    )


def build_stage(
    conn: psycopg.Connection, view: ViewSpec, schema: str, as_of: date, number: int
) -> StagedTable:
    """Create and fill stage table `number` for `view` and month `as_of`, then commit it."""
    live = _live_table(conn, view, schema)
    stage = stage_name(number)
    version = int(conn.execute("show server_version_num").fetchone()[0])
    has_bytea_reverse = version >= PG_WITH_BYTEA_REVERSE
    conn.commit()
    with conn.transaction():  # committed on exit: the swap runs on another connection
        # value_text holds the shortest round-trip float text, as Python prints it.
        conn.execute("set local extra_float_digits = 1")
        conn.execute("set local timezone = 'UTC'")
        conn.execute(sql.SQL("set local work_mem = {}").format(sql.Literal(BUILD_WORK_MEM)))
        conn.execute(
            sql.SQL("set local max_parallel_maintenance_workers = {}").format(
                sql.Literal(BUILD_PARALLEL_WORKERS)
            )
        )
        # A stage table is rebuilt from the marts if lost: no need to wait for its WAL flush.
        conn.execute("set local synchronous_commit = off")
        conn.execute(
            sql.SQL(
                "create table {} (like {} including defaults including storage "
                "including compression)"
            ).format(sql.Identifier(schema, stage), live)
        )
        insert = sql.SQL(
            "insert into {} (entity_key, feature_name, value, value_text, event_ts, created_ts)"
            " select entity_key, feature_name, value, value_text, %(event_ts)s, null from ({}) m"
        ).format(sql.Identifier(schema, stage), month_rows_query(view, has_bytea_reverse))
        event_ts = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
        rows = conn.execute(insert, {"as_of": as_of, "event_ts": event_ts}).rowcount
        try:
            renames = _copy_indexes(conn, schema, view.online_table, stage)
        except psycopg.errors.UniqueViolation as error:
            raise RuntimeError(
                f"{view.source} has more than one row for a {view.join_key} on {as_of}: a "
                "snapshot mart must have one row per key and month (see its dbt tests)"
            ) from error
        # No ANALYZE here: lookups by entity key use the primary key with or without
        # statistics, and autovacuum analyzes the new table within a minute of the swap.
    return StagedTable(view, stage, renames, rows // max(len(view.features), 1))


def _live_table(conn: psycopg.Connection, view: ViewSpec, schema: str) -> sql.Composable:
    columns = {
        row[0]
        for row in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s",
            (schema, view.online_table),
        )
    }
    if not columns:
        raise RuntimeError(
            f"Feast's online table {schema}.{view.online_table} does not exist: materialize "
            "the feast_registry asset (or run `feast apply` in feature_repo/) first"
        )
    if "value_num" in columns:
        raise NotImplementedError(
            f"{schema}.{view.online_table} has a value_num column (Feast's "
            "enable_openai_compatible_store), which this write does not fill: "
            "use `feast materialize` for that store"
        )
    return sql.Identifier(schema, view.online_table)


def _copy_indexes(
    conn: psycopg.Connection, schema: str, table: str, stage: str
) -> list[tuple[str, str]]:
    """Create on `stage` every index of the live `table`, the primary key as a primary key."""
    indexes = conn.execute(
        "select c.relname, pg_get_indexdef(i.indexrelid), i.indisprimary "
        "from pg_index i join pg_class c on c.oid = i.indexrelid "
        "where i.indrelid = %s::regclass order by c.relname",
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchall()
    renames = []
    for position, (name, definition, primary) in enumerate(indexes):
        temporary = f"{stage}_{position}"
        # "CREATE [UNIQUE] INDEX name ON schema.table USING method (...)": the part after
        # USING is PostgreSQL's own, correctly quoted, text.
        head, method = definition.split(" USING ", 1)
        conn.execute(
            sql.SQL("create {unique}index {name} on {stage} using {method}").format(
                unique=sql.SQL("unique " if head.startswith("CREATE UNIQUE") else ""),
                name=sql.Identifier(temporary),
                stage=sql.Identifier(schema, stage),
                method=sql.SQL(method),
            )
        )
        if primary:
            conn.execute(
                sql.SQL("alter table {} add constraint {} primary key using index {}").format(
                    sql.Identifier(schema, stage),
                    sql.Identifier(temporary),
                    sql.Identifier(temporary),
                )
            )
        renames.append((temporary, name))
    return renames


def drop_stages(conn: psycopg.Connection, schema: str) -> None:
    """Drop stage tables a crashed or failed write left behind."""
    leftovers = conn.execute(
        "select tablename from pg_tables where schemaname = %s and tablename like %s",
        (schema, STAGE_PREFIX.replace("_", r"\_") + "%"),  # "_" matches any character
    ).fetchall()
    for (table,) in leftovers:
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, table)))
    conn.commit()
