"""Feast's one-time database setup on the real PostgreSQL: checked on every store, done once."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from streamflow_dagster.features.store import (
    FeatureDatabaseNotReady,
    check_feature_database,
    feature_store,
    prepare_feature_database,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def non_utc_database(database_url):
    """The test database with sessions in New York time, and an ordinary role that may use it."""
    role = f"r_{uuid.uuid4().hex[:12]}"
    database = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter database {} set timezone to 'America/New_York'").format(
                sql.Identifier(database)
            )
        )
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("grant create on database {} to {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    parts = urlsplit(database_url)
    yield urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def test_a_store_on_a_database_without_the_setup_says_what_to_run(non_utc_database):
    with pytest.raises(FeatureDatabaseNotReady, match="schema feast_registry, sessions in UTC"):
        feature_store(non_utc_database)


def test_the_setup_gives_an_ordinary_role_utc_sessions_and_the_registry_schema(
    non_utc_database,
):
    prepare_feature_database(non_utc_database)
    prepare_feature_database(non_utc_database)  # idempotent: a second run changes nothing
    check_feature_database(non_utc_database)
    with psycopg.connect(non_utc_database) as conn:  # a new session, no PGTZ involved
        assert conn.execute("show timezone").fetchone()[0] == "UTC"
    assert feature_store(non_utc_database).config.online_store.database
