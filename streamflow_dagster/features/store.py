"""The platform's Feast store: its environment, the store itself and the churn feature service.

feature_store.yaml reads every connection detail from STREAMFLOW_PG_* variables; this module is
the one place that sets them (from the warehouse URL) before Feast reads the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from psycopg import sql

from ..platform.db import connect, connection_env
from ..platform.settings import FEATURE_REPO_DIR

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

# The feature service the churn model is trained and served with (feature_repo/feature_services.py).
FEATURE_SERVICE = "churn_v1"
# Schema of Feast's SQL registry tables (feature_store.yaml sets it as their search_path).
REGISTRY_SCHEMA = "feast_registry"
# TLS when the server offers it, plain otherwise: the embedded server has no certificate, and
# Feast's own default (`require`) would refuse it. A URL's ?sslmode=... wins.
DEFAULT_SSLMODE = "prefer"


def feast_env(database_url: str) -> dict[str, str]:
    """The environment feature_store.yaml expands, for the database at `database_url`."""
    env = connection_env(database_url)
    query_sslmode = parse_qs(urlsplit(database_url).query).get("sslmode", [None])[0]
    env.setdefault("STREAMFLOW_PG_SSLMODE", query_sslmode or DEFAULT_SSLMODE)
    # Marts hold `as_of` as a date; PostgreSQL turns a date into a timestamp in the session's
    # time zone, and Feast's queries compare them. UTC everywhere keeps AS_OF at 00:00 UTC.
    env["PGTZ"] = "UTC"
    return env


def ensure_registry_schema(database_url: str) -> None:
    """Create the registry's schema; Feast creates its tables there but not the schema."""
    with connect(database_url, service="Feast registry", autocommit=True) as conn:
        conn.execute(
            sql.SQL("create schema if not exists {}").format(sql.Identifier(REGISTRY_SCHEMA))
        )


def feature_store(database_url: str, repo_path: Path = FEATURE_REPO_DIR) -> FeatureStore:
    """The Feast store of `repo_path`, connected to the database at `database_url`.

    Feast expands ${VAR} in feature_store.yaml from os.environ and libpq reads PGTZ from it,
    so the variables are set in this process, exactly as a user exports them by hand.
    """
    from feast import FeatureStore

    os.environ.update(feast_env(database_url))
    ensure_registry_schema(database_url)
    return FeatureStore(repo_path=str(repo_path))


def feature_service(store: FeatureStore, name: str = FEATURE_SERVICE) -> FeatureService:
    """The applied feature service, read from the registry (so training and serving agree)."""
    return store.get_feature_service(name, allow_cache=True)


def feature_references(store: FeatureStore, name: str = FEATURE_SERVICE) -> list[str]:
    """The service's features as "view:feature" references, in the service's order."""
    service = feature_service(store, name)
    return [
        f"{projection.name_to_use()}:{field.name}"
        for projection in service.feature_view_projections
        for field in projection.features
    ]


def feature_names(store: FeatureStore, name: str = FEATURE_SERVICE) -> list[str]:
    """The service's feature names (the model's input columns), in the service's order."""
    return [reference.split(":", 1)[1] for reference in feature_references(store, name)]
