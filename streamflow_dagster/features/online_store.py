"""The online store Feast is configured with, PostgreSQL (default) or Redis, behind one call.

STREAMFLOW_ONLINE_STORE picks it (platform/settings.py; `store.repo_config` puts Feast's
Redis section in place). Both writes keep the newest-month-wins rule, and every written month
is recorded in Feast's registry as a materialization interval, so `feast ui` lists it and
`feast materialize-incremental` starts where the platform stopped.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from ..platform.db import connect
from .online import OnlineWrite, materialize_month, online_month
from .specs import ViewSpec

if TYPE_CHECKING:
    from feast import FeatureStore


def is_redis(store: FeatureStore) -> bool:
    return store.config.online_store.type == "redis"


def redis_url(store: FeatureStore) -> str:
    """The redis:// URL of the store's Redis connection string ("host:port,db=N,...")."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, params = RedisOnlineStore._parse_connection_string(
        store.config.online_store.connection_string
    )
    node = nodes[0]
    user = str(params.get("username", ""))
    password = str(params.get("password", ""))
    auth = f"{user}:{password}@" if (user or password) else ""
    scheme = "rediss" if str(params.get("ssl", "")).lower() == "true" else "redis"
    return f"{scheme}://{auth}{node['host']}:{node['port']}/{int(params.get('db', 0))}"


def write_month(
    database_url: str, store: FeatureStore, views: list[ViewSpec], as_of: date
) -> OnlineWrite:
    """Month `as_of` online in the configured store, then recorded in Feast's registry."""
    if is_redis(store):
        from .online_redis import materialize_month_redis

        write = materialize_month_redis(database_url, redis_url(store), store.project, views, as_of)
    else:
        write = materialize_month(database_url, views, store.config.online_store.db_schema, as_of)
    if write.written:
        record_materialization(store, [view.name for view in views], as_of)
    return write


def current_month(database_url: str, store: FeatureStore) -> date | None:
    """The month the configured online store holds, None before the first write."""
    if is_redis(store):
        from .online_redis import online_month_redis, redis_client

        client = redis_client(redis_url(store))
        try:
            return online_month_redis(client, store.project)
        finally:
            client.close()
    with connect(database_url, service="online store") as conn:
        return online_month(conn)


def month_interval(as_of: date) -> tuple[datetime, datetime]:
    """The event-time window of month `as_of` as Feast counts it: [1st 00:00, next day 00:00).

    The month's rows carry event time AS_OF 00:00 UTC, inside it; `materialize-incremental`
    continues from its end, so it would pick up the next month's rows and no earlier ones.
    """
    start = datetime(as_of.year, as_of.month, 1, tzinfo=UTC)
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def record_materialization(store: FeatureStore, view_names: list[str], as_of: date) -> None:
    """Add month `as_of`'s interval to each view's materialization history in the registry."""
    start, end = month_interval(as_of)
    for name in view_names:
        view = store.registry.get_feature_view(name, store.project, allow_cache=False)
        store.registry.apply_materialization(view, store.project, start, end, commit=True)
