"""The Redis online store: a month of the marts written in Feast's own Redis format, and read.

Feast 0.67's `RedisOnlineStore.online_write_batch` keeps one Redis hash per entity:

    key     serialize_entity_key(..., entity_key_serialization_version=3) + project (utf8)
    fields  mmh3("<view>:<feature>") (4 bytes, `helpers._mmh3`) -> the feast Value protobuf,
            SerializeToString() (b"" for a NULL / NaN value, read back as None)
            "_ts:<view>" -> the event time, a google.protobuf Timestamp, SerializeToString()

Here PostgreSQL builds every Value's bytes (the encoders of `encoding`, which the PostgreSQL
online store's tests prove equal to Feast's) in one query per view, and Python only streams
them to Redis in pipelines of HSETs, one per user and view. The integration tests compare
every key and field with what Feast's own write produces, and read the result back with
`store.get_online_features`.

Newest month wins, as in the PostgreSQL store: the month online is recorded in Redis (hash
`streamflow:online_month:<project>`), a write of an older month writes nothing, and after a
newer month is written the users of the previous month that the new one lacks lose that
view's fields, so the store holds exactly one month. Unlike the PostgreSQL store's table swap,
readers see the month change user by user while a write runs (each user's hash changes at
once); one write at a time (a Redis lock).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from ..platform.db import connect
from ..platform.settings import CONNECT_TIMEOUT_S
from . import encoding
from .online import OnlineWrite
from .online_read import UserFeatures, decode_value, services_views
from .online_tables import PG_WITH_BYTEA_REVERSE
from .specs import ViewSpec

MONTH_KEY = "streamflow:online_month:{project}"
LOCK_KEY = "streamflow:online_write_lock:{project}"
# A crashed writer's lock expires after this; a 1,000,000-user month takes minutes at most.
LOCK_SECONDS = 3600
# How long a second writer waits for the first before it gives up with a clear error.
LOCK_WAIT_SECONDS = 1800
# Users per pipeline: large enough to amortize the round trip, small enough to bound memory.
PIPELINE_USERS = 2000
# Rows fetched from PostgreSQL per round trip of the server-side cursor.
FETCH_ROWS = 10000
# A read that takes longer means Redis is not answering.
READ_TIMEOUT_S = 5.0


class OnlineStoreDown(ConnectionError):
    """Redis could not be reached or did not answer in time."""


def redis_client(url: str, timeout_s: float | None = None):
    """A redis-py client of `url` (binary replies), bounded like the database connections."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=timeout_s,
        health_check_interval=30,
    )


def field_name(view: str, feature: str) -> bytes:
    """Feast's hash field of a feature: murmur3 of "<view>:<feature>", 4 little-endian bytes."""
    from feast.infra.online_stores.helpers import _mmh3

    return _mmh3(f"{view}:{feature}")


def timestamp_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def event_timestamp(as_of: date) -> bytes:
    """The serialized Timestamp of month `as_of`'s rows (midnight UTC), as Feast writes it."""
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC))
    return stamp.SerializeToString()


def parse_timestamp(raw: bytes) -> datetime:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=UTC)


def month_values_query(view: ViewSpec, has_bytea_reverse: bool) -> sql.Composable:
    """SELECT entity_key, <one Value's bytes per feature> of month %(as_of)s of one view."""
    key = sql.Identifier("src", view.join_key)
    values = [
        encoding.value_bytes(
            kind,
            sql.SQL("(src.{}::{})").format(sql.Identifier(name), encoding.sql_cast(kind)),
            has_bytea_reverse,
        )
        for name, kind in view.features
    ]
    return sql.SQL(
        "select {entity_key}, {values} from {source} src where src.{ts} = %(as_of)s "
        "and {key} is not null"
    ).format(
        entity_key=encoding.entity_key(view.join_key, key),
        values=sql.SQL(", ").join(values),
        source=view.source_sql(),
        ts=sql.Identifier(view.timestamp_field),
        key=key,
    )


def leavers_query(view: ViewSpec) -> sql.Composable:
    """Entity keys of month %(old)s of one view that month %(new)s lacks."""
    key = sql.Identifier("src", view.join_key)
    month = sql.SQL(
        "select {entity_key} from {source} src where src.{ts} = {as_of} and {key} is not null"
    )
    parts = {
        "entity_key": encoding.entity_key(view.join_key, key),
        "source": view.source_sql(),
        "ts": sql.Identifier(view.timestamp_field),
        "key": key,
    }
    return sql.SQL("{} except {}").format(
        month.format(as_of=sql.Placeholder("old"), **parts),
        month.format(as_of=sql.Placeholder("new"), **parts),
    )


@dataclass(frozen=True)
class RedisMonth:
    as_of: date
    users_by_view: dict[str, int]


def online_month_redis(client, project: str) -> date | None:
    """The month the Redis online store holds, None before the first write."""
    raw = client.hget(MONTH_KEY.format(project=project), "as_of")
    return date.fromisoformat(raw.decode()) if raw else None


def materialize_month_redis(
    database_url: str, redis_url: str, project: str, views: list[ViewSpec], as_of: date
) -> OnlineWrite:
    """Write month `as_of` of every view to Redis, unless a newer month is already there."""
    if not views:
        raise ValueError("No online feature view is registered: materialize feast_registry first")
    started = time.perf_counter()
    client = redis_client(redis_url)
    try:
        lock = client.lock(
            LOCK_KEY.format(project=project),
            timeout=LOCK_SECONDS,
            blocking_timeout=LOCK_WAIT_SECONDS,
        )
        if not lock.acquire():
            raise RuntimeError(
                f"Another online write to Redis ({redis_url}) held its lock for "
                f"{LOCK_WAIT_SECONDS} s: wait for it, or delete the key "
                f"{LOCK_KEY.format(project=project)} if its writer crashed"
            )
        try:
            newest = online_month_redis(client, project)
            if newest is not None and as_of < newest:
                return OnlineWrite(as_of, False, newest, seconds=time.perf_counter() - started)
            with connect(database_url, service="online store") as conn:
                users = write_month(conn, client, project, views, as_of)
                if newest is not None and newest != as_of:
                    remove_leavers(conn, client, project, views, newest, as_of)
            _record(client, project, as_of, users)
        finally:
            lock.release()
    finally:
        client.close()
    rows = sum(users[view.name] * len(view.features) for view in views)
    return OnlineWrite(as_of, True, as_of, users, rows, time.perf_counter() - started)


def write_month(
    conn: psycopg.Connection, client, project: str, views: list[ViewSpec], as_of: date
) -> dict[str, int]:
    """HSET every user's fields of month `as_of`, view by view; {view: users written}."""
    has_bytea_reverse = (
        int(conn.execute("show server_version_num").fetchone()[0]) >= PG_WITH_BYTEA_REVERSE
    )
    suffix = project.encode()
    stamp = event_timestamp(as_of)
    users: dict[str, int] = {}
    for view in views:
        fields = [field_name(view.name, name) for name in view.feature_names]
        ts_field = timestamp_field(view.name)
        written = 0
        with conn.transaction(), conn.cursor(name=f"streamflow_redis_{view.name}") as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(month_values_query(view, has_bytea_reverse), {"as_of": as_of})
            pipe = client.pipeline(transaction=False)
            pending = 0
            for entity_key, *values in cursor:
                command = ["HSET", bytes(entity_key) + suffix, ts_field, stamp]
                for name, value in zip(fields, values, strict=True):
                    command += (name, bytes(value))
                pipe.execute_command(*command)
                pending += 1
                if pending == PIPELINE_USERS:
                    pipe.execute()
                    written += pending
                    pending = 0
            if pending:
                pipe.execute()
                written += pending
        users[view.name] = written
    return users


def remove_leavers(
    conn: psycopg.Connection,
    client,
    project: str,
    views: list[ViewSpec],
    old: date,
    new: date,
) -> int:
    """HDEL each view's fields of the users month `old` had and `new` lacks; how many."""
    suffix = project.encode()
    removed = 0
    for view in views:
        fields = [timestamp_field(view.name)] + [
            field_name(view.name, name) for name in view.feature_names
        ]
        rows = conn.execute(leavers_query(view), {"old": old, "new": new})
        keys = [bytes(row[0]) for row in rows]
        for start in range(0, len(keys), PIPELINE_USERS):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + PIPELINE_USERS]:
                pipe.hdel(key + suffix, *fields)
            pipe.execute()
        removed += len(keys)
    return removed


def _record(client, project: str, as_of: date, users: dict[str, int]) -> None:
    key = MONTH_KEY.format(project=project)
    mapping = {
        "as_of": as_of.isoformat(),
        "materialized_at": datetime.now(UTC).isoformat(),
        **{f"users:{view}": count for view, count in users.items()},
    }
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping=mapping)
    pipe.execute()


class RedisOnlineReader:
    """Reads a feature service's online values from Redis: one pipelined HMGET per user.

    The same interface as `online_read.OnlineReader` (the API's engine uses either); it needs
    no database connection (`needs_database`).
    """

    needs_database = False

    def __init__(
        self,
        views: list[ViewSpec],
        redis_url: str,
        project: str,
        service_features: dict[str, list[str]] | None = None,
        client=None,
    ):
        if not views:
            raise ValueError("The feature service has no feature views")
        join_keys = {view.join_key for view in views}
        if len(join_keys) != 1:
            raise NotImplementedError(f"One join key is supported, the views use {join_keys}")
        self.views = views
        self.redis_url = redis_url
        self.project = project
        self.join_key = views[0].join_key
        self.features = [name for view in views for name in view.feature_names]
        self.service_features = service_features or {}
        self._prefix = encoding.entity_key_prefix(self.join_key)
        self._suffix = project.encode()
        # HMGET's fields: each view's timestamp, then its features; (view, [(feature, slot)]).
        self._fields: list[bytes] = []
        self._layout: list[tuple[int, list[tuple[str, int]]]] = []
        for view in views:
            ts_slot = len(self._fields)
            self._fields.append(timestamp_field(view.name))
            slots = []
            for name in view.feature_names:
                slots.append((name, len(self._fields)))
                self._fields.append(field_name(view.name, name))
            self._layout.append((ts_slot, slots))
        self._client = client or redis_client(redis_url, READ_TIMEOUT_S)

    def for_services(self, services: list[str]) -> RedisOnlineReader:
        """A reader of only these services' features (the views they need, nothing more)."""
        views, service_features = services_views(self.views, self.service_features, services)
        return RedisOnlineReader(
            views,
            self.redis_url,
            self.project,
            service_features,
            client=self._client,
        )

    def entity_key(self, user_id: str) -> bytes:
        encoded = user_id.encode("utf8")
        return self._prefix + len(encoded).to_bytes(4, "little") + encoded

    def read(self, conn: object, user_ids: list[str]) -> dict[str, UserFeatures]:
        """{user_id: UserFeatures} for each distinct id of `user_ids` (`conn` is unused)."""
        import redis

        ids = list(dict.fromkeys(user_ids))
        if not ids:
            try:
                self._client.ping()
            except (redis.ConnectionError, redis.TimeoutError) as error:
                raise OnlineStoreDown(f"Redis at {self.redis_url}: {error}") from None
            return {}
        try:
            pipe = self._client.pipeline(transaction=False)
            for user_id in ids:
                pipe.hmget(self.entity_key(user_id) + self._suffix, self._fields)
            replies = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise OnlineStoreDown(f"Redis at {self.redis_url}: {error}") from None
        result = {}
        for user_id, reply in zip(ids, replies, strict=True):
            values: dict[str, object] = {}
            newest: datetime | None = None
            for ts_slot, slots in self._layout:
                stamp = reply[ts_slot]
                if stamp is None:  # this view has no row for the user: Feast reads "not found"
                    continue
                event_ts = parse_timestamp(stamp)
                newest = event_ts if newest is None else max(newest, event_ts)
                for name, slot in slots:
                    if reply[slot] is not None:
                        values[name] = decode_value(reply[slot])
            missing = [name for name in self.features if name not in values]
            result[user_id] = UserFeatures(user_id, values, missing, newest)
        return result

    def online_month(self, conn: object = None) -> date | None:
        import redis

        try:
            return online_month_redis(self._client, self.project)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise OnlineStoreDown(f"Redis at {self.redis_url}: {error}") from None
