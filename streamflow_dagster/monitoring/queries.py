"""What the monitors read from the warehouse: landed months, and a month's scores with labels."""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg
from psycopg import sql

from ..features.specs import ViewSpec
from ..features.training import LABEL_COLUMN, LABELS_TABLE, entity_view, read_frame
from ..ml.scoring import SCORES_SCHEMA, SCORES_TABLE


def previous_month(conn: psycopg.Connection, views: list[ViewSpec], as_of: date) -> date | None:
    """The newest month before `as_of` with users in the feature service's entity source."""
    spine = entity_view(views)
    query = sql.SQL("select max({ts}) from {source} src where {ts} < %(as_of)s").format(
        ts=sql.Identifier(spine.timestamp_field), source=spine.source_sql()
    )
    found = conn.execute(query, {"as_of": as_of}).fetchone()[0]
    return found.date() if hasattr(found, "date") else found


def label_rows(conn: psycopg.Connection, as_of: date) -> int:
    query = sql.SQL("select count(*) from {} where as_of = %s").format(
        sql.Identifier(*LABELS_TABLE)
    )
    return conn.execute(query, (as_of,)).fetchone()[0]


def scores_with_labels(conn: psycopg.Connection, as_of: date) -> pd.DataFrame:
    """The month's scores (user_id, churn_probability, model_version) and label (or NULL)."""
    exists = conn.execute(
        "select to_regclass(%s)", (f"{SCORES_SCHEMA}.{SCORES_TABLE}",)
    ).fetchone()[0]
    if exists is None:
        return pd.DataFrame(columns=["user_id", "churn_probability", "model_version", "label"])
    query = sql.SQL(
        "select s.user_id, s.churn_probability, s.model_version, l.{label} as label "
        "from {scores} s left join {labels} l on l.user_id = s.user_id and l.as_of = s.as_of "
        "where s.as_of = %(as_of)s"
    ).format(
        label=sql.Identifier(LABEL_COLUMN),
        scores=sql.Identifier(SCORES_SCHEMA, SCORES_TABLE),
        labels=sql.Identifier(*LABELS_TABLE),
    )
    return read_frame(conn, query, {"as_of": as_of})


def served_features(conn: psycopg.Connection, as_of: date) -> tuple[pd.DataFrame, int]:
    """The distinct (user_id, feature values) the API answered with from the month's online
    features (user_id and a column per served feature), and how many of the month's logged
    predictions carry no features (logged before the log recorded them)."""
    from ..serving.predlog import SCHEMA, TABLE

    empty = pd.DataFrame(columns=["user_id"])
    if conn.execute("select to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()[0] is None:
        return empty, 0
    month = sql.SQL("(features_as_of at time zone 'UTC')::date = %(as_of)s")
    has_features = conn.execute(
        "select 1 from information_schema.columns where table_schema = %s "
        "and table_name = %s and column_name = 'features'",
        (SCHEMA, TABLE),
    ).fetchone()
    if has_features is None:  # no API has started since the column was added
        query = sql.SQL("select count(*) from {} where {}").format(
            sql.Identifier(SCHEMA, TABLE), month
        )
        return empty, conn.execute(query, {"as_of": as_of}).fetchone()[0]
    query = sql.SQL(
        "select distinct user_id, features from {table} where {month} and features is not null"
    ).format(table=sql.Identifier(SCHEMA, TABLE), month=month)
    rows = conn.execute(query, {"as_of": as_of}).fetchall()
    without = sql.SQL("select count(*) from {table} where {month} and features is null").format(
        table=sql.Identifier(SCHEMA, TABLE), month=month
    )
    unrecorded = conn.execute(without, {"as_of": as_of}).fetchone()[0]
    if not rows:
        return empty, unrecorded
    served = pd.DataFrame.from_records([features for _, features in rows])
    served.insert(0, "user_id", [user for user, _ in rows])
    return served, unrecorded
