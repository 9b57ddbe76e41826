"""Batch scores of a month: every user's churn probability into scores.churn_scores.

Read: the month's point-in-time features (the feature service's SQL, as training uses),
streamed out of PostgreSQL with COPY and parsed by Arrow. Score: row chunks on parallel
threads, one OpenMP thread each. Write: one transaction deletes the month and COPYs its
rows, so readers see the old month or the new one, never a mix.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from ..features.specs import ViewSpec
from ..features.training import point_in_time_query, query_params
from .dataset import model_input
from .threads import openmp_limited

SCORES_SCHEMA = "scores"
SCORES_TABLE = "churn_scores"
# Rows per scoring task; two tasks run at once (one per core) with one OpenMP thread each.
CHUNK_ROWS = 125_000
SCORING_THREADS = 2
# Serialises the scores DDL across processes (parallel months create the table together).
_DDL_LOCK_ID = 7_310_301
_ARROW_TYPES = {
    "STRING": pa.string(),
    "BOOL": pa.bool_(),
    "INT64": pa.int64(),
    "INT32": pa.int64(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float64(),
}
SCORES_DDL = sql.SQL(
    "create table if not exists {} ("
    "user_id text not null, as_of date not null, churn_probability double precision not null,"
    " prediction boolean not null, model_version integer not null,"
    " primary key (as_of, user_id))"
).format(sql.Identifier(SCORES_SCHEMA, SCORES_TABLE))


@dataclass(frozen=True)
class MonthScores:
    as_of: date
    rows: int
    model_version: int
    predicted_churn_rate: float
    mean_probability: float
    read_seconds: float
    score_seconds: float
    write_seconds: float


def read_month_features(
    conn: psycopg.Connection, views: list[ViewSpec], as_of: date
) -> pd.DataFrame:
    """user_id and every feature of the service's views for the month's users (COPY + Arrow)."""
    query = sql.SQL("copy ({}) to stdout (format csv, header true)").format(
        point_in_time_query(views)
    )
    buffer = io.BytesIO()
    with conn.transaction():
        conn.execute("set local timezone = 'UTC'")  # AS_OF is 00:00 UTC, as for training
        with conn.cursor().copy(query, query_params(as_of)) as copy:
            for chunk in copy:
                buffer.write(chunk)
    types = {views[0].join_key: pa.string()}
    for view in views:
        types.update({name: _ARROW_TYPES[kind] for name, kind in view.features})
    table = pa_csv.read_csv(
        io.BytesIO(buffer.getvalue()),
        convert_options=pa_csv.ConvertOptions(
            column_types=types,
            true_values=["t"],
            false_values=["f"],
            strings_can_be_null=True,  # COPY writes NULL unquoted, an empty text quoted
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas()


def churn_probability(model, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """P(churn) for every row; chunks run on SCORING_THREADS threads (row order kept)."""
    starts = range(0, len(frame), CHUNK_ROWS)

    def score(start: int) -> np.ndarray:
        with openmp_limited():
            chunk = model_input(frame.iloc[start : start + CHUNK_ROWS], features)
            return model.predict_proba(chunk)[:, 1]

    if len(frame) == 0:
        return np.empty(0)
    with ThreadPoolExecutor(max_workers=SCORING_THREADS) as pool:
        return np.concatenate(list(pool.map(score, starts)))


def ensure_scores_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_DDL_LOCK_ID,))
        conn.execute(
            sql.SQL("create schema if not exists {}").format(sql.Identifier(SCORES_SCHEMA))
        )
        conn.execute(SCORES_DDL)


def write_month_scores(
    conn: psycopg.Connection,
    as_of: date,
    user_ids: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    model_version: int,
) -> int:
    """Replace month `as_of` of scores.churn_scores in one transaction; returns rows written."""
    ensure_scores_table(conn)
    rows = pa.table(
        {
            "user_id": pa.array(user_ids, type=pa.string()),
            "as_of": pa.array(np.full(len(user_ids), as_of), type=pa.date32()),
            "churn_probability": pa.array(probability, type=pa.float64()),
            "prediction": pa.array(probability >= threshold, type=pa.bool_()),
            "model_version": pa.array(np.full(len(user_ids), model_version), type=pa.int32()),
        }
    )
    csv = io.BytesIO()
    pa_csv.write_csv(rows, csv, write_options=pa_csv.WriteOptions(include_header=False))
    table = sql.Identifier(SCORES_SCHEMA, SCORES_TABLE)
    columns = sql.SQL(", ").join(map(sql.Identifier, rows.column_names))
    with conn.transaction():
        conn.execute(sql.SQL("delete from {} where as_of = %s").format(table), (as_of,))
        copy_in = sql.SQL("copy {} ({}) from stdin (format csv)").format(table, columns)
        with conn.cursor().copy(copy_in) as copy:
            view = csv.getbuffer()
            for start in range(0, len(view), 8 << 20):
                copy.write(view[start : start + (8 << 20)])
            view.release()
    return len(user_ids)


def score_month(
    conn: psycopg.Connection,
    views: list[ViewSpec],
    as_of: date,
    model,
    model_version: int,
    features: list[str],
) -> MonthScores:
    """Read, score and write month `as_of` with `model` (a thresholded classifier)."""
    started = time.perf_counter()
    frame = read_month_features(conn, views, as_of)
    read_done = time.perf_counter()
    probability = churn_probability(model, frame, features)
    score_done = time.perf_counter()
    threshold = float(model.threshold)
    rows = write_month_scores(
        conn, as_of, frame[views[0].join_key].to_numpy(), probability, threshold, model_version
    )
    return MonthScores(
        as_of=as_of,
        rows=rows,
        model_version=model_version,
        predicted_churn_rate=float(np.mean(probability >= threshold)) if rows else 0.0,
        mean_probability=float(np.mean(probability)) if rows else 0.0,
        read_seconds=read_done - started,
        score_seconds=score_done - read_done,
        write_seconds=time.perf_counter() - score_done,
    )
