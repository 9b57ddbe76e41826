"""What the fast SQL paths need to know about a feature view, read from the Feast registry.

The online write and the training-set query are built from these specs, which are taken
from the applied Feast objects, so they follow feature_repo/ without a copied list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from .encoding import check_entity_key_version
from .store import feature_service

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView


@dataclass(frozen=True)
class ViewSpec:
    name: str  # feature view name, e.g. subs_profile_fv
    source: str  # Feast's FROM string: a table (marts.x) or a parenthesised query
    timestamp_field: str  # e.g. as_of
    join_key: str  # e.g. user_id
    ttl: timedelta
    features: tuple[tuple[str, str], ...]  # (feature name, Feast ValueType name), e.g. DOUBLE
    online_table: str  # Feast's online table name: <project>_<view>

    def source_sql(self) -> sql.Composable:
        """The source as a FROM item (a query comes from our own repository, not from data)."""
        if self.source.startswith("("):
            return sql.SQL(self.source)
        return sql.Identifier(*self.source.split("."))

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]


def view_spec(store: FeatureStore, view: FeatureView, fields=None) -> ViewSpec:
    """The spec of `view`, restricted to `fields` (a service's projection) when given."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )
    from feast.infra.online_stores.helpers import compute_table_id

    source = view.batch_source
    if not isinstance(source, PostgreSQLSource):
        raise TypeError(f"{view.name}: the SQL paths need a PostgreSQLSource, not {source!r}")
    if len(view.join_keys) != 1:
        raise NotImplementedError(f"{view.name}: the SQL paths support one join key")
    return ViewSpec(
        name=view.name,
        source=source.get_table_query_string(),
        timestamp_field=source.timestamp_field,
        join_key=view.join_keys[0],
        ttl=view.ttl or timedelta(0),
        features=tuple(
            (field.name, field.dtype.to_value_type().name) for field in (fields or view.features)
        ),
        online_table=compute_table_id(
            store.project, view, store.config.registry.enable_online_feature_view_versioning
        ),
    )


def check_key_format(store: FeatureStore) -> None:
    """The store's entity key format is the one the SQL paths (features/encoding.py) build."""
    config_file = Path(store.repo_path) / "feature_store.yaml"
    check_entity_key_version(store.config.entity_key_serialization_version, str(config_file))


def online_views(store: FeatureStore) -> list[ViewSpec]:
    """Every online feature view of the project, all its features (what materialize writes)."""
    check_key_format(store)
    views = store.list_feature_views(allow_cache=False)
    return [view_spec(store, view) for view in sorted(views, key=lambda v: v.name) if view.online]


def service_views(store: FeatureStore, service_name: str) -> list[ViewSpec]:
    """The views of a feature service, each with the features the service selects, in order."""
    check_key_format(store)
    service = feature_service(store, service_name)
    return [
        view_spec(store, store.get_feature_view(projection.name), projection.features)
        for projection in service.feature_view_projections
    ]


def union_views(store: FeatureStore, service_names: list[str]) -> list[ViewSpec]:
    """The views of several services, each view once with every feature any of them selects.

    What the training set stores so that every compared service's model trains on the same
    rows: a view keeps its first service's position, features keep their first-seen order.
    """
    return merge_views([service_views(store, name) for name in service_names])


def merge_views(view_lists: list[list[ViewSpec]]) -> list[ViewSpec]:
    merged: dict[str, ViewSpec] = {}
    for views in view_lists:
        for view in views:
            known = merged.get(view.name)
            if known is None:
                merged[view.name] = view
                continue
            extra = tuple(f for f in view.features if f not in known.features)
            merged[view.name] = replace(known, features=known.features + extra)
    return list(merged.values())
