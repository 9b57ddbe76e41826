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
