"""Small helpers the integration tests share: landing files and table checksums."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from streamflow_dagster.landing.contract import LANDING_TABLES, TABLES_BY_NAME


def write_month(
    landing: Path, as_of: str, rows: dict[str, list[str]], raw_files: dict[str, bytes] | None = None
) -> Path:
    """Write a landing month: `rows` are data lines under the contract header."""
    folder = landing / as_of
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in rows.items():
        header = ",".join(TABLES_BY_NAME[name].column_names)
        (folder / TABLES_BY_NAME[name].file).write_text("\n".join([header, *lines]) + "\n")
    for file_name, content in (raw_files or {}).items():
        (folder / file_name).write_bytes(content)
    return folder


def table_checksum(
    conn: psycopg.Connection, schema: str, table: str, where: str = "true", params: tuple = ()
) -> tuple[int, str]:
    """(row count, md5 of every row in key order): byte-level equality of table contents."""
    query = sql.SQL(
        "select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '') "
        "from {} t where " + where
    ).format(sql.Identifier(schema, table))
    count, digest = conn.execute(query, params).fetchone()
    return count, digest


def raw_checksums(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    out = {t.name: table_checksum(conn, "raw", t.name) for t in LANDING_TABLES}
    out["quarantine"] = table_checksum(conn, "raw", "quarantine")
    return out
