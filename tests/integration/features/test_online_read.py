"""The direct online read returns exactly what Feast's get_online_features returns."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import psycopg
import pytest

from streamflow_dagster.features.online import materialize_month
from streamflow_dagster.features.online_read import OnlineReader
from streamflow_dagster.features.specs import online_views, service_views
from streamflow_dagster.features.store import FEATURE_SERVICE, feature_names
from tests.integration.features.test_online import (
    LONG_ID,
    ONLINE_SCHEMA,
    add_edge_cases,
    applied_store,
)

pytestmark = pytest.mark.integration


def same(left: object, right: object) -> bool:
    """Equal values of the same type (1 and 1.0 or True and 1 are different answers)."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return type(left) is type(right) and left == right


def test_direct_read_equals_get_online_features(demo_marts):
    url, months = demo_marts
    newest = months[-1]
    add_edge_cases(url, newest)
    store = applied_store(url)
    materialize_month(url, online_views(store), ONLINE_SCHEMA, date.fromisoformat(newest))
    with psycopg.connect(url) as conn:
        users = [
            row[0]
            for row in conn.execute(
                "select user_id from marts.subscriptions_profile_snapshots where as_of = %s",
                (newest,),
            )
        ]
    users.append("nobody-42")
    names = feature_names(store)
    feast = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{"user_id": u} for u in users],
    ).to_dict()

    reader = OnlineReader(service_views(store, FEATURE_SERVICE), ONLINE_SCHEMA)
    with psycopg.connect(url) as conn:
        direct = reader.read(conn, users)

    assert reader.features == names and len(names) == 14
    assert LONG_ID in users and len(direct) == len(users)
    mismatches = [
        (user, name, direct[user].values.get(name), feast[name][position])
        for position, user in enumerate(users)
        for name in names
        if not same(direct[user].values.get(name), feast[name][position])
    ]
    assert mismatches == []
    assert direct["nobody-42"].missing == names and direct["nobody-42"].event_ts is None
    found = direct[users[0]]
    assert found.complete
    assert found.event_ts == datetime.fromisoformat(newest).replace(tzinfo=UTC)
    # edge-0 has a profile and usage row but no payments/support rows: only those are missing.
    assert direct["edge-0"].missing == [
        "failed_payments_90d",
        "support_tickets_90d",
        "ticket_avg_resolution_hrs_90d",
    ]
    assert direct["edge-0"].values["monthly_fee"] is None  # NaN offline: an unset value


def test_user_absent_from_the_newest_month_has_no_features(demo_marts):
    url, months = demo_marts
    store = applied_store(url)
    for month in months:
        materialize_month(url, online_views(store), ONLINE_SCHEMA, date.fromisoformat(month))
    with psycopg.connect(url) as conn:
        (gone,) = conn.execute(
            "select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
            "except select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
            "limit 1",
            (months[0], months[-1]),
        ).fetchone()
        reader = OnlineReader(service_views(store, FEATURE_SERVICE), ONLINE_SCHEMA)
        result = reader.read(conn, [gone])[gone]
    assert result.values == {} and result.missing == reader.features
