"""Write a validated month into schema `raw`, atomically, with COPY.

One transaction per month: for every table that landed, delete the month's rows, COPY the
accepted rows and replace the month's quarantine rows. Any failure rolls the whole month
back, so the previous contents of that month stay exactly as they were.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from .contract import (
    LANDING_TABLES,
    QUARANTINE_DDL,
    QUARANTINE_TABLE,
    RAW_SCHEMA,
    LandingTable,
    raw_table_ddl,
)
from .validate import LandingFileError, ParsedFile, parse_landing_file

COPY_CHUNK_ROWS = 200_000  # bounds the CSV text held in memory at once
# Serialises DDL of schema raw across processes (concurrent CREATE SCHEMA/TABLE can collide).
_DDL_LOCK_ID = 7_310_001


class MissingLandingFile(FileNotFoundError):
    pass


@dataclass
class TableLoad:
    table: LandingTable
    landed: bool  # False: optional file (labels) not there yet
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    previous_rows: int | None = None  # rows of the latest earlier month, for the change check
    sample_rejections: tuple[tuple[int, str], ...] = ()

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0


def month_dir(landing_dir: Path, as_of: str) -> Path:
    return landing_dir / as_of


def parse_month(landing_dir: Path, as_of: str) -> dict[str, ParsedFile | None]:
    """Validate every file of the month; raise before any write when one cannot be loaded.

    A missing required file, an empty one (or header only) and a header without a required
    column refuse the whole month: no raw table of the month changes, and the error names
    every file and column at fault.
    """
    folder = month_dir(landing_dir, as_of)
    if not folder.is_dir():
        raise MissingLandingFile(
            f"No landing folder for AS_OF {as_of}: expected {folder} with "
            f"{', '.join(t.file for t in LANDING_TABLES)}"
        )
    missing = [t.file for t in LANDING_TABLES if t.required and not (folder / t.file).is_file()]
    if missing:
        raise MissingLandingFile(
            f"Landing folder {folder} is missing required file(s) {', '.join(missing)}; "
            "add them (or remove the folder) and materialize the month again"
        )
    parsed = {
        t.name: parse_landing_file(folder / t.file, t) if (folder / t.file).is_file() else None
        for t in LANDING_TABLES
    }
    unloadable = [
        problem
        for parsed_file in parsed.values()
        if parsed_file
        for problem in _unloadable(parsed_file)
    ]
    if unloadable:
        raise LandingFileError(
            f"{as_of} refused, nothing of it loaded: {'; '.join(unloadable)}. "
            "Fix the file(s) and materialize the month again"
        )
    return parsed


def _unloadable(parsed: ParsedFile) -> list[str]:
    """Why a file leaves nothing to load row by row: no records, or a required column missing."""
    if parsed.no_records:
        return [f"{parsed.path}: {parsed.no_records}"]
    if parsed.missing_columns:
        return [
            f"{parsed.path}, line 1: the header has no column {', '.join(parsed.missing_columns)} "
            f"(expected {', '.join(parsed.table.column_names)})"
        ]
    return []


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_DDL_LOCK_ID,))
        conn.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table in LANDING_TABLES:
            conn.execute(raw_table_ddl(table))
        conn.execute(QUARANTINE_DDL)
        conn.execute(
            f"create index if not exists quarantine_month_idx "
            f"on {RAW_SCHEMA}.{QUARANTINE_TABLE} (as_of, table_name)"
        )


def load_month(
    conn: psycopg.Connection, as_of: str, parsed: dict[str, ParsedFile | None]
) -> dict[str, TableLoad]:
    """Replace the month in raw.* and raw.quarantine in one transaction."""
    as_of_date = date.fromisoformat(as_of)
    ensure_raw_schema(conn)
    results: dict[str, TableLoad] = {}
    with conn.transaction():
        for table in LANDING_TABLES:
            parsed_file = parsed.get(table.name)
            if parsed_file is None:
                # Labels arrive late: leave whatever the month already had.
                results[table.name] = TableLoad(
                    table, landed=False, previous_rows=_previous_rows(conn, table, as_of_date)
                )
                continue
            _replace_rows(conn, table, as_of_date, parsed_file.accepted)
            _replace_quarantine(conn, table, as_of_date, parsed_file.rejections)
            results[table.name] = TableLoad(
                table,
                landed=True,
                rows_read=parsed_file.rows_read,
                rows_loaded=len(parsed_file.accepted),
                rows_rejected=len(parsed_file.rejections),
                missing_columns=tuple(parsed_file.missing_columns),
                extra_columns=tuple(parsed_file.extra_columns),
                previous_rows=_previous_rows(conn, table, as_of_date),
                sample_rejections=tuple(
                    parsed_file.rejections[["line_number", "reason"]]
                    .head(10)
                    .itertuples(index=False, name=None)
                ),
            )
    for table in LANDING_TABLES:
        if results[table.name].landed:
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(RAW_SCHEMA, table.name)))
    return results


def _previous_rows(conn: psycopg.Connection, table: LandingTable, as_of: date) -> int | None:
    query = sql.SQL(
        "select count(*) from {t} where as_of = (select max(as_of) from {t} where as_of < %s)"
    ).format(t=sql.Identifier(RAW_SCHEMA, table.name))
    count = conn.execute(query, (as_of,)).fetchone()[0]
    has_previous = conn.execute(
        sql.SQL("select exists(select 1 from {t} where as_of < %s)").format(
            t=sql.Identifier(RAW_SCHEMA, table.name)
        ),
        (as_of,),
    ).fetchone()[0]
    return count if has_previous else None


def _replace_rows(conn, table: LandingTable, as_of: date, accepted: pa.Table) -> None:
    target = sql.Identifier(RAW_SCHEMA, table.name)
    conn.execute(sql.SQL("delete from {} where as_of = %s").format(target), (as_of,))
    if accepted.num_rows == 0:
        return
    rows = accepted.add_column(0, "as_of", pa.array([as_of] * accepted.num_rows, pa.date32()))
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in rows.column_names)
    statement = sql.SQL("copy {} ({}) from stdin with (format csv)").format(target, columns)
    with conn.cursor().copy(statement) as copy:
        for start in range(0, rows.num_rows, COPY_CHUNK_ROWS):
            buffer = io.BytesIO()
            # Nulls are written as empty unquoted fields, which COPY csv reads as NULL.
            pa_csv.write_csv(
                rows.slice(start, COPY_CHUNK_ROWS),
                buffer,
                pa_csv.WriteOptions(include_header=False),
            )
            copy.write(buffer.getvalue())


def _replace_quarantine(conn, table: LandingTable, as_of: date, rejections: pd.DataFrame) -> None:
    target = sql.Identifier(RAW_SCHEMA, QUARANTINE_TABLE)
    conn.execute(
        sql.SQL("delete from {} where table_name = %s and as_of = %s").format(target),
        (table.name, as_of),
    )
    if rejections.empty:
        return
    frame = rejections.copy()
    frame.insert(0, "as_of", as_of.isoformat())
    frame.insert(0, "table_name", table.name)
    _copy_frame(
        conn,
        sql.SQL(
            "copy {} (table_name, as_of, line_number, raw_record, reason) "
            "from stdin with (format csv)"
        ).format(target),
        frame,
    )


def _copy_frame(conn, statement: sql.Composed, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    with conn.cursor().copy(statement) as copy:
        for start in range(0, len(frame), COPY_CHUNK_ROWS):
            chunk = frame.iloc[start : start + COPY_CHUNK_ROWS]
            # Unquoted empty fields are NULL in COPY csv; non-empty text is quoted as needed.
            copy.write(chunk.to_csv(header=False, index=False))
