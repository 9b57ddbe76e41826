"""Online vs offline: the check Feast's own tests make, run after every online write.

A sample of the online month's users is read through `store.get_online_features` (the
feature service, as serving reads it) and straight from the marts; every feature must match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from .specs import ViewSpec
from .training import entity_view

if TYPE_CHECKING:
    from feast import FeatureStore

# Examples of mismatches kept for the check's metadata: enough to see a pattern.
MAX_REPORTED_MISMATCHES = 10


@dataclass(frozen=True)
class Consistency:
    online_month: date | None
    users_checked: int
    values_checked: int
    mismatches: int = 0
    examples: list[str] = field(default_factory=list)  # "u0000042 monthly_fee: online 1.0, ..."

    @property
    def passed(self) -> bool:
        return self.mismatches == 0


def sample_users(conn: psycopg.Connection, views: list[ViewSpec], month: date, size: int):
    """A deterministic sample of the month's users (same month, same sample)."""
    spine = entity_view(views)
    query = sql.SQL(
        "select {key} from {source} src where src.{ts} = %s and {key} is not null "
        "order by md5({key}) limit %s"
    ).format(
        key=sql.Identifier("src", spine.join_key),
        source=spine.source_sql(),
        ts=sql.Identifier(spine.timestamp_field),
    )
    return [row[0] for row in conn.execute(query, (month, size))]


def offline_values(
    conn: psycopg.Connection, views: list[ViewSpec], month: date, users: list[str]
) -> dict[str, dict[str, object]]:
    """{user: {feature: value}} of month `month`, read from the sources (missing: absent)."""
    values: dict[str, dict[str, object]] = {user: {} for user in users}
    for view in views:
        query = sql.SQL(
            "select src.{key}, {features} from {source} src where src.{ts} = %s "
            "and src.{key} = any(%s)"
        ).format(
            key=sql.Identifier(view.join_key),
            features=sql.SQL(", ").join(sql.Identifier("src", n) for n in view.feature_names),
            source=view.source_sql(),
            ts=sql.Identifier(view.timestamp_field),
        )
        for user, *row in conn.execute(query, (month, users)):
            values[user].update(zip(view.feature_names, row, strict=True))
    return values


def check_online_matches_offline(
    store: FeatureStore,
    conn: psycopg.Connection,
    views: list[ViewSpec],
    service_name: str,
    month: date | None,
    sample_size: int,
) -> Consistency:
    if month is None:
        return Consistency(None, 0, 0)
    users = sample_users(conn, views, month, sample_size)
    offline = offline_values(conn, views, month, users)
    online = store.get_online_features(
        features=store.get_feature_service(service_name),
        entity_rows=[{views[0].join_key: user} for user in users],
    ).to_dict()
    mismatches, compared = [], 0
    for position, user in enumerate(users):
        for view in views:
            for name in view.feature_names:
                expected = _normal(offline[user].get(name))
                actual = _normal(online[name][position])
                compared += 1
                if expected != actual:
                    mismatches.append(f"{user} {name}: online {actual!r}, offline {expected!r}")
    return Consistency(
        month, len(users), compared, len(mismatches), mismatches[:MAX_REPORTED_MISMATCHES]
    )


def _normal(value: object) -> object:
    """NULL and NaN both mean "no value" online (Feast writes an empty Value for them)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
