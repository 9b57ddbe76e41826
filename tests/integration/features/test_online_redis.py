"""The Redis online store on a real redis-server and real Feast: Feast's own bytes, newest
month wins, the registry's materialization history (both stores), and `feast ui` starting."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from streamflow_dagster.features.consistency import check_online_matches_offline
from streamflow_dagster.features.online_redis import RedisOnlineReader, redis_client
from streamflow_dagster.features.online_store import (
    current_month,
    month_interval,
    redis_url,
    write_month,
)
from streamflow_dagster.features.registry import apply_repo
from streamflow_dagster.features.specs import online_views, service_views
from streamflow_dagster.features.store import (
    CHALLENGER_FEATURE_SERVICE,
    feast_env,
    feature_store,
    prepare_feature_database,
)
from streamflow_dagster.platform.settings import (
    FEATURE_REPO_DIR,
    REDIS_ONLINE_STORE,
    OnlineStoreSettings,
)
from tests.integration.features.test_online import add_edge_cases
from tests.servers import RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def redis_store(url: str, server: RedisServer, db: int):
    """The Feast store with its online store in Redis database `db` (emptied first)."""
    redis_at = f"redis://127.0.0.1:{server.port}/{db}"
    client = redis_client(redis_at)
    client.flushdb()
    client.close()
    prepare_feature_database(url)
    store = feature_store(url, online=OnlineStoreSettings(REDIS_ONLINE_STORE, redis_at))
    apply_repo(store, FEATURE_REPO_DIR)
    return store


def redis_contents(store) -> dict[bytes, dict[bytes, bytes]]:
    """Every key of the store's Redis database with all its fields."""
    client = redis_client(redis_url(store))
    try:
        return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


def users_of(url: str, month: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
                "order by user_id",
                (month,),
            )
        ]


def test_bulk_write_is_byte_identical_to_feast_and_read_back_by_feast(demo_marts, redis_server):
    url, months = demo_marts
    month = months[1]
    add_edge_cases(url, month)
    by_feast = redis_store(url, redis_server, 1)
    by_us = redis_store(url, redis_server, 2)
    views = online_views(by_us)
    as_of = date.fromisoformat(month)
    start = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)

    # Feast's own materialize: RedisOnlineStore.online_write_batch, row by row.
    by_feast.materialize(start - timedelta(hours=1), start + timedelta(hours=1))
    written_by_feast = redis_contents(by_feast)
    assert len(written_by_feast) > 300

    write = write_month(url, by_us, views, as_of)
    assert write.written and write.online_as_of == as_of
    written_by_us = redis_contents(by_us)
    # The month record is ours; every other key and field is Feast's format, byte for byte.
    ours = {k for k in written_by_us if k.startswith(b"streamflow:")}
    assert ours == {f"streamflow:online_month:{by_us.project}".encode()}
    assert {k: v for k, v in written_by_us.items() if k not in ours} == written_by_feast

    # Feast reads what we wrote: the consistency check the asset runs (online vs the marts).
    service = CHALLENGER_FEATURE_SERVICE  # the widest service: every online view
    specs = service_views(by_us, service)
    with psycopg.connect(url) as conn:
        consistency = check_online_matches_offline(
            by_us, conn, specs, service, current_month(url, by_us), 500
        )
    assert consistency.users_checked > 300 and consistency.passed, consistency.examples

    # The API's direct read (pipelined HMGET) equals get_online_features, user by user.
    users = users_of(url, month)[:50] + ["edge-0", "edge-3", "ü-用户", "nobody"]
    reader = RedisOnlineReader(specs, redis_url(by_us), by_us.project)
    direct = reader.read(None, users)
    online = by_us.get_online_features(
        features=by_us.get_feature_service(service),
        entity_rows=[{"user_id": user} for user in users],
    ).to_dict()
    for position, user in enumerate(users):
        for name in reader.features:
            assert direct[user].values.get(name) == online[name][position], (user, name)
    assert direct["nobody"].values == {} and direct["nobody"].event_ts is None
    complete = [user for user in users if direct[user].complete]
    assert len(complete) >= 30 and {direct[user].event_ts for user in complete} == {start}
    assert reader.online_month() == as_of


def test_newest_month_wins_and_registry_records_each_written_month(demo_marts, redis_server):
    url, months = demo_marts
    store = redis_store(url, redis_server, 3)
    views = online_views(store)
    newest, older = date.fromisoformat(months[1]), date.fromisoformat(months[0])
    leaver = users_of(url, months[0])[0]
    with psycopg.connect(url) as conn:  # one user of month 0 is gone from month 1
        for view in views:
            conn.execute(
                f"delete from {view.source} where user_id = %s and as_of = %s",
                (leaver, months[1]),
            )
    reader = RedisOnlineReader(service_views(store, "churn_v1"), redis_url(store), store.project)

    assert write_month(url, store, views, older).written
    assert reader.read(None, [leaver])[leaver].complete
    assert write_month(url, store, views, newest).written
    # The leaver's month-0 values are gone: the store holds exactly the newest month.
    assert reader.read(None, [leaver])[leaver].values == {}
    skipped = write_month(url, store, views, older)
    assert not skipped.written and skipped.online_as_of == newest
    assert current_month(url, store) == newest
    somebody = users_of(url, months[1])[0]
    found = reader.read(None, [somebody])[somebody]
    assert found.complete and found.event_ts.date() == newest

    # Feast's registry has both written months (not the skipped one), and
    # materialize-incremental would start at the newest month's end.
    for view in views:
        registered = store.registry.get_feature_view(view.name, store.project, allow_cache=False)
        intervals = [(s, e) for s, e in registered.materialization_intervals]
        assert intervals == [month_interval(older), month_interval(newest)], view.name
        assert registered.most_recent_end_time == month_interval(newest)[1]


def test_postgres_store_writes_are_recorded_in_the_registry(demo_marts):
    url, months = demo_marts
    prepare_feature_database(url)
    store = feature_store(url, online=OnlineStoreSettings("postgres"))
    apply_repo(store, FEATURE_REPO_DIR)
    assert store.config.online_store.type == "postgres"
    views = online_views(store)
    as_of = date.fromisoformat(months[2])
    assert write_month(url, store, views, as_of).written
    assert current_month(url, store) == as_of
    for view in views:
        registered = store.registry.get_feature_view(view.name, store.project, allow_cache=False)
        assert registered.materialization_intervals == [month_interval(as_of)]


def test_feast_ui_starts_with_the_printed_environment(database_url):
    """`feast ui` in feature_repo/ with `streamflow feast-env`'s variables answers HTTP 200."""
    prepare_feature_database(database_url)
    apply_repo(feature_store(database_url), FEATURE_REPO_DIR)
    port = free_port()
    env = {**os.environ, **feast_env(database_url)}
    feast = os.path.join(os.path.dirname(os.sys.executable), "feast")
    proc = subprocess.Popen(
        [feast, "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=FEATURE_REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            wait_for_port(port, timeout_s=120)
        except TimeoutError:
            proc.kill()
            raise AssertionError(proc.communicate()[0].decode()[-3000:]) from None
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        # The UI's data: the registry it serves names our project.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/projects-list.json") as answer:
            assert b"streamflow" in answer.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
