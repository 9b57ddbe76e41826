"""The platform's Feast store: its configuration, its database setup, the churn feature service.

feature_store.yaml reads every connection detail from ${STREAMFLOW_PG_*} variables. The platform
fills them in from the warehouse URL when it builds Feast's RepoConfig (`repo_config`), without
touching this process's environment; `streamflow feast-env` prints them for the `feast` CLI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from psycopg import sql

from ..platform.db import connect, connection_env
from ..platform.settings import (
    CONNECT_TIMEOUT_S,
    FEATURE_REPO_DIR,
    OnlineStoreSettings,
    online_store_settings,
)

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

# The seed's feature service (feature_repo/feature_services.py): what /features returns, and the
# service of a model version that records none.
FEATURE_SERVICE = "churn_v1"
# The challenger service: churn_v1's features and the landing's other columns.
CHALLENGER_FEATURE_SERVICE = "churn_v2"
# The services every month trains a model on and compares on the same holdout; the first is
# the incumbent, which another replaces only under the promotion rule (ml/services.py).
COMPARED_FEATURE_SERVICES = (FEATURE_SERVICE, CHALLENGER_FEATURE_SERVICE)
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


# ${NAME} or $NAME, as Feast (os.path.expandvars) expands feature_store.yaml.
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# A date turns into midnight of the session's time zone: these must come out as UTC midnight,
# in winter and in summer (a zone at +00:00 only in winter is not enough).
_UTC_PROBE = (
    "select '2024-01-31'::date::timestamptz = '2024-01-31 00:00+00'::timestamptz"
    " and '2024-07-31'::date::timestamptz = '2024-07-31 00:00+00'::timestamptz"
)


class FeatureDatabaseNotReady(RuntimeError):
    """The database lacks what Feast needs: the registry's schema, or sessions in UTC."""


def expand_variables(text: str, values: Mapping[str, str]) -> str:
    """`text` with each ${NAME} / $NAME of `values` replaced; any other is left as it is."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(value, text)


def redis_connection_string(url: str) -> str:
    """Feast's Redis connection string ("host:port,db=N,password=...,ssl=true") of a URL."""
    parts = urlsplit(url)
    params = [f"{parts.hostname}:{parts.port or 6379}"]
    database = parts.path.strip("/")
    if database:
        params.append(f"db={int(database)}")
    if parts.username:
        params.append(f"username={parts.username}")
    if parts.password:
        params.append(f"password={parts.password}")
    if parts.scheme == "rediss":
        params.append("ssl=true")
    params.append(f"socket_connect_timeout={CONNECT_TIMEOUT_S}")
    return ",".join(params)


def redis_online_store(url: str) -> dict:
    """feature_store.yaml's `online_store` section for Feast's Redis store at `url`."""
    return {"type": "redis", "connection_string": redis_connection_string(url)}


def repo_config(
    database_url: str,
    repo_path: Path = FEATURE_REPO_DIR,
    online: OnlineStoreSettings | None = None,
):  # -> feast RepoConfig
    """feature_store.yaml of `repo_path`, its variables from `feast_env(database_url)`.

    Other ${VAR}s still come from the environment, as Feast's own loader reads them. With the
    Redis online store (`online`, by default STREAMFLOW_ONLINE_STORE), the file's PostgreSQL
    `online_store` section is replaced by Feast's Redis one; registry and offline store stay.
    """
    import yaml
    from feast.repo_config import FeastConfigError, RepoConfig
    from pydantic import ValidationError

    path = repo_path / "feature_store.yaml"
    values = {**os.environ, **feast_env(database_url)}
    raw = yaml.safe_load(expand_variables(path.read_text(), values))
    online = online or online_store_settings()
    if online.redis:
        raw["online_store"] = redis_online_store(online.redis_url)
    try:
        config = RepoConfig(**raw)
    except ValidationError as error:
        raise FeastConfigError(error, path) from error
    config.repo_path = repo_path
    return config


def prepare_feature_database(database_url: str) -> None:
    """The one-time setup Feast needs in the warehouse database (the feast_registry asset runs it).

    Creates the registry's schema (Feast creates its tables there, not the schema), and makes
    this role's sessions in this database use UTC when they do not already: the marts hold
    `as_of` as a date, which PostgreSQL turns into midnight of the session's time zone when
    Feast compares it with event times. The embedded server runs in UTC already.
    """
    with connect(database_url, service="Feast registry", autocommit=True) as conn:
        conn.execute(
            sql.SQL("create schema if not exists {}").format(sql.Identifier(REGISTRY_SCHEMA))
        )
        if not conn.execute(_UTC_PROBE).fetchone()[0]:
            database = conn.info.dbname
            conn.execute(
                sql.SQL("alter role current_user in database {} set timezone to 'UTC'").format(
                    sql.Identifier(database)
                )
            )


def check_feature_database(database_url: str) -> None:
    """Raise FeatureDatabaseNotReady, saying what to run, when the setup above is missing."""
    with connect(database_url, service="Feast registry") as conn:
        schema, utc = conn.execute(
            "select to_regnamespace(%s) is not null, (" + _UTC_PROBE + ")", (REGISTRY_SCHEMA,)
        ).fetchone()
        database = conn.info.dbname
    missing = [
        *([] if schema else [f"schema {REGISTRY_SCHEMA}"]),
        *([] if utc else ["sessions in UTC"]),
    ]
    if missing:
        raise FeatureDatabaseNotReady(
            f"Database {database} is not set up for Feast (missing: {', '.join(missing)}): "
            "materialize feast_registry (job streamflow_setup; `streamflow run` does it "
            "first), or call features.store.prepare_feature_database(url)"
        )


def feature_store(
    database_url: str,
    repo_path: Path = FEATURE_REPO_DIR,
    online: OnlineStoreSettings | None = None,
) -> FeatureStore:
    """The Feast store of `repo_path`, connected to the database at `database_url`.

    Builds Feast's RepoConfig in code: nothing is written to this process's environment.
    The database must have had `prepare_feature_database` (checked here).
    """
    from feast import FeatureStore

    check_feature_database(database_url)
    return FeatureStore(
        repo_path=str(repo_path), config=repo_config(database_url, repo_path, online)
    )


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
