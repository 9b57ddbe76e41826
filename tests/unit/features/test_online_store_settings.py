"""Choosing the online store: the settings, Feast's Redis section, and the URL round trip."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from streamflow_dagster.features.online_redis import event_timestamp, parse_timestamp
from streamflow_dagster.features.online_store import month_interval, redis_url
from streamflow_dagster.features.store import redis_connection_string, repo_config
from streamflow_dagster.platform.settings import (
    REDIS_ONLINE_STORE,
    OnlineStoreSettings,
    online_store_settings,
)

URL = "postgresql://postgres@127.0.0.1:5433/streamflow"


def test_postgres_is_the_default(monkeypatch):
    monkeypatch.delenv("STREAMFLOW_ONLINE_STORE", raising=False)
    assert online_store_settings() == OnlineStoreSettings("postgres")
    assert repo_config(URL).online_store.type == "postgres"


def test_redis_needs_a_redis_url(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_ONLINE_STORE", "redis")
    monkeypatch.delenv("STREAMFLOW_REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="needs STREAMFLOW_REDIS_URL"):
        online_store_settings()
    monkeypatch.setenv("STREAMFLOW_REDIS_URL", "http://cache:6379")
    with pytest.raises(ValueError, match="STREAMFLOW_REDIS_URL='http://cache:6379'"):
        online_store_settings()
    monkeypatch.setenv("STREAMFLOW_REDIS_URL", "redis://cache:6380/2")
    assert online_store_settings() == OnlineStoreSettings("redis", "redis://cache:6380/2")


def test_an_unknown_store_names_the_variable(monkeypatch):
    monkeypatch.setenv("STREAMFLOW_ONLINE_STORE", "dynamodb")
    with pytest.raises(ValueError, match="STREAMFLOW_ONLINE_STORE='dynamodb'.*postgres, redis"):
        online_store_settings()


def test_redis_replaces_only_the_online_section():
    url = "rediss://:s3cret@cache.example:6390/3"
    config = repo_config(URL, online=OnlineStoreSettings(REDIS_ONLINE_STORE, url))
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string.startswith(
        "cache.example:6390,db=3,password=s3cret,ssl=true"
    )
    assert config.offline_store.type == "postgres"  # registry and offline store unchanged
    assert config.registry.registry_type == "sql"

    class Store:  # what redis_url reads: the config
        pass

    store = Store()
    store.config = config
    assert redis_url(store) == "rediss://:s3cret@cache.example:6390/3"
    assert redis_connection_string("redis://h").startswith("h:6379,")


def test_month_interval_and_timestamps():
    start, end = month_interval(date(2024, 2, 29))
    assert (start, end) == (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert parse_timestamp(event_timestamp(date(2024, 2, 29))) == datetime(2024, 2, 29, tzinfo=UTC)
