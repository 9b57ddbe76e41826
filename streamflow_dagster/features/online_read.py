"""Reading a feature service's online values with one prepared SQL statement.

`store.get_online_features` resolves the service in the registry, builds protobuf entity keys,
runs one query per feature view and converts every value through several layers: about 0.8 ms
for one user on the reference machine, most of it Python. The rows it reads are Feast's own
(`encoding` documents the format), so this reads the same rows, by the same serialized entity
key, in ONE query over the service's views, and decodes the same Value protobufs with Feast's
own type map. The integration tests compare it with `get_online_features` user by user.

The views come from the applied feature service (`specs.service_views`): serving reads exactly
the features training read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from psycopg import sql

from .encoding import entity_key_prefix
from .specs import ViewSpec


@dataclass(frozen=True)
class UserFeatures:
    """One user's online features: values of the features found, and the ones not found."""

    user_id: str
    values: dict[str, object]  # feature -> value (None: the row exists, the value is unset)
    missing: list[str]  # features with no online row, in the service's order
    event_ts: datetime | None  # the feature month (AS_OF) of the rows found

    @property
    def complete(self) -> bool:
        return not self.missing

    def only(self, names: list[str]) -> UserFeatures:
        """These features of the user (a feature service's), in the order of `names`."""
        values = {name: self.values[name] for name in names if name in self.values}
        missing = [name for name in names if name not in values]
        return UserFeatures(self.user_id, values, missing, self.event_ts)


class OnlineReader:
    """Reads the online values of a feature service's views for a list of users.

    `service_features`: {service: its features} of the services these views serve (all of
    them when the views are several services' union), for `for_services`.
    """

    needs_database = True  # reads with the caller's connection (online_redis's does not)

    def __init__(
        self,
        views: list[ViewSpec],
        schema: str,
        service_features: dict[str, list[str]] | None = None,
    ):
        if not views:
            raise ValueError("The feature service has no feature views")
        join_keys = {view.join_key for view in views}
        if len(join_keys) != 1:
            raise NotImplementedError(f"One join key is supported, the views use {join_keys}")
        self.views = views
        self.schema = schema
        self.join_key = views[0].join_key
        self.features = [name for view in views for name in view.feature_names]
        self.service_features = service_features or {}
        self._prefix = entity_key_prefix(self.join_key)
        # One branch per view; the view's position tells which features a row can be.
        branches = [
            sql.SQL(
                "select {position}::int, entity_key, feature_name, value, event_ts from {table} "
                "where entity_key = any(%(keys)s) and feature_name = any(%(features_{position})s)"
            ).format(
                position=sql.Literal(position), table=sql.Identifier(schema, view.online_table)
            )
            for position, view in enumerate(views)
        ]
        self.query = sql.SQL(" union all ").join(branches)
        self._feature_params = {
            f"features_{position}": view.feature_names for position, view in enumerate(views)
        }

    def for_services(self, services: list[str]) -> OnlineReader:
        """A reader of only these services' features (the views they need, nothing more)."""
        views, service_features = services_views(self.views, self.service_features, services)
        return OnlineReader(views, self.schema, service_features)

    def entity_key(self, user_id: str) -> bytes:
        """serialize_entity_key(user_id=...) in Feast's v3 format."""
        encoded = user_id.encode("utf8")
        return self._prefix + struct.pack("<I", len(encoded)) + encoded

    def read(self, conn: psycopg.Connection, user_ids: list[str]) -> dict[str, UserFeatures]:
        """{user_id: UserFeatures} for each distinct id of `user_ids`."""
        keys = {self.entity_key(user_id): user_id for user_id in user_ids}
        found: dict[str, dict[str, object]] = {user_id: {} for user_id in keys.values()}
        months: dict[str, datetime] = {}
        params = {"keys": list(keys), **self._feature_params}
        rows = conn.execute(self.query, params, prepare=True).fetchall()
        for _position, entity_key, feature, value, event_ts in rows:
            user_id = keys[bytes(entity_key)]
            found[user_id][feature] = decode_value(value)
            months[user_id] = max(event_ts, months.get(user_id, event_ts))
        return {
            user_id: UserFeatures(
                user_id,
                values,
                [name for name in self.features if name not in values],
                months.get(user_id),
            )
            for user_id, values in found.items()
        }

    def online_month(self, conn: psycopg.Connection):  # -> date | None
        """The month the online tables hold (features.online_month)."""
        from .online import online_month

        return online_month(conn)


def services_views(
    views: list[ViewSpec], service_features: dict[str, list[str]], services: list[str]
) -> tuple[list[ViewSpec], dict[str, list[str]]]:
    """The views (narrowed to the features wanted) and features of only these services; an
    unknown service is a KeyError naming the known ones. Shared by both online stores' readers.
    """
    unknown = [s for s in services if s not in service_features]
    if unknown:
        raise KeyError(f"feature service(s) {unknown} are not among {list(service_features)}")
    wanted = {name for s in services for name in service_features[s]}
    narrowed = [
        replace(view, features=tuple(f for f in view.features if f[0] in wanted))
        for view in views
        if any(name in wanted for name in view.feature_names)
    ]
    return narrowed, {s: service_features[s] for s in services}


def decode_value(value: bytes | memoryview | None) -> object:
    """A stored feast Value as `get_online_features` returns it (None for an empty Value)."""
    if not value:
        return None
    return feast_value_type_to_python_type(ValueProto.FromString(bytes(value)))
