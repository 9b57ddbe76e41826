"""Every prediction, logged to PostgreSQL for later evaluation, off the request path.

The worker hands rows to an in-memory buffer (a deque append); a background thread COPYs
the buffer into serving.prediction_log every FLUSH_SECONDS. A database outage keeps the rows
buffered and retried; only beyond MAX_BUFFERED_ROWS are the oldest dropped, counted (the
`streamflow_prediction_log_dropped_total` metric) and logged, so an outage cannot exhaust the
API's memory. If the API stops while the database is still away, the buffered rows go to a
spool file under $STREAMFLOW_HOME/serving (serving.spool) and the next API start writes them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .errors import reason
from .spool import Spool

log = logging.getLogger("streamflow.serve")

SCHEMA, TABLE = "serving", "prediction_log"
COLUMNS = (
    "predicted_at",
    "user_id",
    "variant",
    "model_alias",
    "model_version",
    "churn_probability",
    "prediction",
    "features_as_of",
    "features",
)
# `features` (the feature values the answer used, as JSON) came after the first release: a
# table made before it gets the column added (NULL for its old rows), never recreated.
DDL = sql.SQL(
    "create table if not exists {} (predicted_at timestamptz not null, user_id text not null, "
    "variant text not null, model_alias text not null, model_version integer not null, "
    "churn_probability double precision not null, prediction boolean not null, "
    "features_as_of timestamptz, features jsonb)"
).format(sql.Identifier(SCHEMA, TABLE))
ADDED_COLUMNS = sql.SQL("alter table {} add column if not exists features jsonb").format(
    sql.Identifier(SCHEMA, TABLE)
)
# A second of predictions per COPY: at a few thousand rows/s, one short transaction a second.
FLUSH_SECONDS = 1.0
# About 100 MB of rows at most while the database is away (a few minutes at full load).
MAX_BUFFERED_ROWS = 500_000
# Serialises the DDL when several API processes start at once.
_DDL_LOCK_ID = 7_310_501


def ensure_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_DDL_LOCK_ID,))
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
        conn.execute(DDL)
        if not _has_column(conn, "features"):  # ALTER locks the table: only when needed
            conn.execute(ADDED_COLUMNS)
        conn.execute(
            sql.SQL("create index if not exists {} on {} (predicted_at)").format(
                sql.Identifier(f"{TABLE}_predicted_at"), sql.Identifier(SCHEMA, TABLE)
            )
        )


def _has_column(conn: psycopg.Connection, column: str) -> bool:
    query = (
        "select 1 from information_schema.columns "
        "where table_schema = %s and table_name = %s and column_name = %s"
    )
    return conn.execute(query, (SCHEMA, TABLE, column)).fetchone() is not None


class PredictionLog:
    def __init__(
        self,
        database_url: str,
        on_drop: Callable[[int], None] = lambda n: None,
        spool_dir: Path | None = None,  # None: rows still buffered at stop are only counted
        max_rows: int = MAX_BUFFERED_ROWS,
    ):
        self.database_url = database_url
        self._rows: deque[tuple] = deque()
        self._on_drop = on_drop
        self._spool = Spool(spool_dir) if spool_dir else None
        self._replaying: list[Path] = []  # spool files whose rows are in the buffer
        self._max_rows = max_rows
        self._dropped_unreported = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._conn: psycopg.Connection | None = None
        self.last_error: str | None = None

    def record(self, rows: list[tuple]) -> None:
        self._rows.extend(rows)
        overflow = len(self._rows) - self._max_rows
        if overflow > 0:
            for _ in range(overflow):
                self._rows.popleft()
            self._on_drop(overflow)
            self._dropped_unreported += overflow  # logged by the flusher, once a flush

    @property
    def buffered(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        if self._spool is not None:
            rows, self._replaying = self._spool.claim()
            # Rows spooled by a release before a column was added: NULL for the new columns.
            rows = [(*row, *(None,) * (len(COLUMNS) - len(row))) for row in rows]
            if rows:
                self._rows.extendleft(reversed(rows))  # older than anything answered now
                log.info(f"prediction log: {len(rows)} spooled rows to write ({self._replaying})")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.flush()
        self._report_drops()
        if self._rows:
            self._spool_rest()
        if self._conn is not None:
            self._conn.close()

    def _spool_rest(self) -> None:
        rows = list(self._rows)
        if self._spool is None:
            self._on_drop(len(rows))
            log.error(f"prediction log: {len(rows)} rows lost at stop ({self.last_error})")
            return
        path = self._spool.save(rows)
        self._rows.clear()
        self._spool.release(self._replaying)  # their rows are in the new file
        log.warning(
            f"prediction log: database away at stop ({self.last_error}); {len(rows)} rows "
            f"spooled to {path}, written by the next API start"
        )

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()
            self._report_drops()

    def _report_drops(self) -> None:
        dropped, self._dropped_unreported = self._dropped_unreported, 0
        if dropped:
            log.error(
                f"prediction log: {dropped} oldest rows dropped: over {self._max_rows} rows "
                f"waited for the database ({self.last_error}); counted in "
                "streamflow_prediction_log_dropped_total"
            )

    def flush(self) -> int:
        """Write the buffered rows; on failure they stay buffered for the next attempt."""
        batch = []
        while self._rows:
            batch.append(self._rows.popleft())
        if not batch:
            return 0
        try:
            conn = self._connection()
            with (
                conn.transaction(),
                conn.cursor().copy(
                    sql.SQL("copy {} ({}) from stdin").format(
                        sql.Identifier(SCHEMA, TABLE),
                        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                    )
                ) as copy,
            ):
                for row in batch:
                    copy.write_row(_database_row(row))
        except psycopg.Error as error:
            self._rows.extendleft(reversed(batch))  # back in front, in order
            self.last_error = reason(error)
            log.warning(f"prediction log: {len(batch)} rows kept for retry ({self.last_error})")
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return 0
        self.last_error = None
        if self._replaying and self._spool is not None:
            self._spool.release(self._replaying)  # spooled rows come first: all written now
            self._replaying = []
        return len(batch)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, connect_timeout=2)
            ensure_table(self._conn)
        return self._conn


def _database_row(row: tuple) -> tuple:
    """The row as COPY takes it: the features as JSONB (None for a row without them)."""
    *columns, features = row
    return (*columns, None if features is None else Jsonb(features, dumps=_features_json))


def _features_json(values: dict) -> str:
    # JSON has no NaN or infinity (PostgreSQL's jsonb rejects them, and would then refuse the
    # whole batch on every retry): an unset value is null, as the online store's empty Value.
    # A type JSON lacks (a date, a decimal) is logged as its text, not left out.
    plain = {
        name: None if isinstance(value, float) and not math.isfinite(value) else value
        for name, value in values.items()
    }
    return json.dumps(plain, default=str)
