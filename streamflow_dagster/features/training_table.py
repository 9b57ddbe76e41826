"""features.training_set: one month's point-in-time features and labels, replaced atomically.

One row per (as_of, user_id) with the feature service's features and `churn_label`.
features.training_set_months says, per month, whether the labels had landed: a month whose
labels are missing holds no rows and `labels_landed = false`, so a model never trains on it.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import date

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from .schema import FEATURES_SCHEMA, features_ddl
from .specs import ViewSpec
from .training import LABEL_COLUMN, LABELS_TABLE, entity_query, point_in_time_query, query_params

TRAINING_SET_TABLE = "training_set"
MONTHS_TABLE = "training_set_months"
PG_TYPES = {
    "STRING": "text",
    "INT64": "bigint",
    "INT32": "integer",
    "DOUBLE": "double precision",
    "BOOL": "boolean",
}
# Arrow types of the table's PostgreSQL types (by type OID), for reading it with COPY.
_ARROW_BY_OID = {
    16: pa.bool_(),  # boolean
    20: pa.int64(),  # bigint
    23: pa.int64(),  # integer
    701: pa.float64(),  # double precision
    25: pa.string(),  # text
    1082: pa.date32(),  # date
}


@dataclass(frozen=True)
class TrainingSetWrite:
    as_of: date
    feature_service: str
    labels_landed: bool
    rows: int  # labelled users written
    entity_rows: int  # users in the month's profile snapshot
    unlabeled_users: int  # users of the month without a label row (not written)
    churn_rate: float | None
    null_rate: dict[str, float]
    seconds: float


def labels_not_landed_message(as_of: date) -> str:
    return (
        f"labels for {as_of} have not landed yet: the month's training set is empty; "
        f"re-materialize training_set for {as_of} once its labels.csv has landed"
    )


def write_training_set(
    conn: psycopg.Connection, views: list[ViewSpec], service_name: str, as_of: date
) -> TrainingSetWrite:
    """Replace month `as_of` of features.training_set in one transaction."""
    started = time.perf_counter()
    features = [feature for view in views for feature in view.features]
    ensure_tables(conn, features)
    params = query_params(as_of)
    with conn.transaction():
        conn.execute("set local timezone = 'UTC'")
        entity_rows = _scalar(
            conn, sql.SQL("select count(*) from ({}) e").format(entity_query(views)), params
        )
        labels = _scalar(
            conn,
            sql.SQL("select count(*) from {} where as_of = %(as_of)s").format(
                sql.Identifier(*LABELS_TABLE)
            ),
            params,
        )
        conn.execute(
            sql.SQL("delete from {} where as_of = %(as_of)s").format(_table(TRAINING_SET_TABLE)),
            params,
        )
        rows = 0
        if labels:
            names = [sql.Identifier(name) for name, _ in features]
            insert = sql.SQL(
                "insert into {table} (as_of, user_id, {names}, {label}) "
                "select %(as_of)s, pit.user_id, {pit_names}, labels.{label} from ({pit}) pit "
                "join {labels} labels on labels.user_id = pit.user_id and labels.as_of = %(as_of)s"
            ).format(
                table=_table(TRAINING_SET_TABLE),
                names=sql.SQL(", ").join(names),
                label=sql.Identifier(LABEL_COLUMN),
                pit_names=sql.SQL(", ").join(sql.SQL("pit.{}").format(n) for n in names),
                pit=point_in_time_query(views),
                labels=sql.Identifier(*LABELS_TABLE),
            )
            rows = conn.execute(insert, params).rowcount
        conn.execute(
            sql.SQL(
                "insert into {} (as_of, feature_service, labels_landed, rows, built_at) "
                "values (%s, %s, %s, %s, now()) on conflict (as_of) do update set "
                "feature_service = excluded.feature_service, labels_landed = "
                "excluded.labels_landed, rows = excluded.rows, built_at = excluded.built_at"
            ).format(_table(MONTHS_TABLE)),
            (as_of, service_name, labels > 0, rows),
        )
    churn_rate, null_rate = _statistics(conn, [name for name, _ in features], as_of)
    return TrainingSetWrite(
        as_of=as_of,
        feature_service=service_name,
        labels_landed=labels > 0,
        rows=rows,
        entity_rows=entity_rows,
        unlabeled_users=entity_rows - rows if labels else entity_rows,
        churn_rate=churn_rate,
        null_rate=null_rate,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class TrainingSetStatus:
    as_of: date
    feature_service: str
    labels_landed: bool
    rows: int


def training_set_status(conn: psycopg.Connection, as_of: date) -> TrainingSetStatus | None:
    """Whether month `as_of` was built and its labels had landed; None if never built."""
    exists = conn.execute("select to_regclass(%s)", (f"{FEATURES_SCHEMA}.{MONTHS_TABLE}",))
    if exists.fetchone()[0] is None:
        return None
    row = conn.execute(
        sql.SQL(
            "select as_of, feature_service, labels_landed, rows from {} where as_of = %s"
        ).format(_table(MONTHS_TABLE)),
        (as_of,),
    ).fetchone()
    return TrainingSetStatus(*row) if row else None


def load_training_set(conn: psycopg.Connection, as_of: date) -> pd.DataFrame:
    """Month `as_of` of features.training_set (the model's rows), ordered by user_id."""
    query = sql.SQL("select * from {} where as_of = %(as_of)s order by user_id").format(
        _table(TRAINING_SET_TABLE)
    )
    return _copy_frame(conn, query, {"as_of": as_of})


def _copy_frame(conn: psycopg.Connection, query: sql.Composable, params: dict) -> pd.DataFrame:
    """The query's rows through COPY and Arrow: the values psycopg would give, NULL as NaN
    in number columns. A million rows as Python objects took ~20 s and ~1.5 GB."""
    with conn.cursor() as cursor:
        cursor.execute(sql.SQL("select * from ({}) as q limit 0").format(query), params)
        columns = [(c.name, c.type_code) for c in cursor.description]
    unknown = [f"{name} (type oid {oid})" for name, oid in columns if oid not in _ARROW_BY_OID]
    if unknown:
        raise TypeError(f"features.{TRAINING_SET_TABLE} has columns of unexpected types: {unknown}")
    buffer = io.BytesIO()
    with conn.transaction():
        # ISO dates and floats printed exactly (shortest text that reads back the same double).
        conn.execute("set local datestyle = 'ISO, YMD'")
        conn.execute("set local extra_float_digits = 1")
        copy_out = sql.SQL("copy ({}) to stdout (format csv, header true)").format(query)
        with conn.cursor().copy(copy_out, params) as copy:
            for chunk in copy:
                buffer.write(chunk)
    table = pa_csv.read_csv(
        io.BytesIO(buffer.getvalue()),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: _ARROW_BY_OID[oid] for name, oid in columns},
            true_values=["t"],
            false_values=["f"],
            strings_can_be_null=True,  # COPY writes NULL unquoted, an empty text quoted
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas()


def ensure_tables(conn: psycopg.Connection, features: list[tuple[str, str]]) -> None:
    """Create the tables for these features, or refuse a table made for other features."""
    columns = [
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(PG_TYPES[t])) for n, t in features
    ]
    conn.commit()
    with features_ddl(conn):
        conn.execute(
            sql.SQL(
                "create table if not exists {} (as_of date not null, user_id text not null, {}, "
                "{} boolean not null, primary key (as_of, user_id))"
            ).format(
                _table(TRAINING_SET_TABLE),
                sql.SQL(", ").join(columns),
                sql.Identifier(LABEL_COLUMN),
            )
        )
        conn.execute(
            sql.SQL(
                "create table if not exists {} (as_of date primary key, feature_service text "
                "not null, labels_landed boolean not null, rows bigint not null, "
                "built_at timestamptz not null)"
            ).format(_table(MONTHS_TABLE))
        )
        existing = {
            name
            for (name,) in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                (FEATURES_SCHEMA, TRAINING_SET_TABLE),
            )
        }
    expected = {"as_of", "user_id", LABEL_COLUMN, *(name for name, _ in features)}
    if existing != expected:
        raise RuntimeError(
            f"{FEATURES_SCHEMA}.{TRAINING_SET_TABLE} has columns {sorted(existing)}, not the "
            f"feature service's {sorted(expected)}: its features changed. Drop the table (it "
            "is rebuilt month by month) and materialize training_set again."
        )


def _statistics(
    conn: psycopg.Connection, names: list[str], as_of: date
) -> tuple[float | None, dict[str, float]]:
    """The month's churn rate and the share of NULLs in each feature column."""
    nulls = [sql.SQL("count(*) filter (where {} is null)").format(sql.Identifier(n)) for n in names]
    row = conn.execute(
        sql.SQL("select count(*), avg({label}::int), {nulls} from {table} where as_of = %s").format(
            label=sql.Identifier(LABEL_COLUMN),
            nulls=sql.SQL(", ").join(nulls),
            table=_table(TRAINING_SET_TABLE),
        ),
        (as_of,),
    ).fetchone()
    rows = row[0]
    churn_rate = float(row[1]) if row[1] is not None else None
    return churn_rate, {n: (row[2 + i] / rows if rows else 0.0) for i, n in enumerate(names)}


def _scalar(conn: psycopg.Connection, query: sql.Composable, params: dict) -> int:
    return conn.execute(query, params).fetchone()[0]


def _table(name: str) -> sql.Composable:
    return sql.Identifier(FEATURES_SCHEMA, name)
