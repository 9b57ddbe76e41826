"""A month end to end with the Redis online store: `streamflow run` through the deployment
writes it to a real redis-server (Debian's, installed by the test), and `streamflow serve`
answers /features and /predict from Redis (the PostgreSQL online tables stay empty)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import psycopg
import pytest

from streamflow_dagster.features.online_redis import redis_client
from streamflow_dagster.features.online_store import month_interval
from streamflow_dagster.features.specs import online_views
from streamflow_dagster.features.store import feature_store
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.platform.settings import REDIS_ONLINE_STORE, OnlineStoreSettings
from tests.servers import RedisServer, free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3000)]

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
MONTH = "2024-01-31"
USERS, SEED = 300, 11


def streamflow(env: dict, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STREAMFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def redis_env(server_home, tmp_path):
    home = server_home("redis-online")
    with RedisServer(tmp_path / "redis") as redis_server:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("STREAMFLOW_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME")
            and not k.startswith(("STREAMFLOW_PG_", "STREAMFLOW_SERVE_"))
        }
        env |= {
            "STREAMFLOW_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "STREAMFLOW_ONLINE_STORE": REDIS_ONLINE_STORE,
            "STREAMFLOW_REDIS_URL": redis_server.url,
        }
        generate_landing(home / "landing", users=USERS, months=1, seed=SEED)
        yield env, redis_server
        streamflow(env, "deploy", "stop", timeout=300)
        streamflow(env, "db", "stop", timeout=120)


def test_a_month_through_redis_and_the_api_reads_it(redis_env):
    env, redis_server = redis_env
    started = time.monotonic()
    done = streamflow(env, "run", "--months", MONTH)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_seconds = time.monotonic() - started

    url = streamflow(env, "db", "url", timeout=120).stdout.strip()
    online = OnlineStoreSettings(REDIS_ONLINE_STORE, redis_server.url)
    store = feature_store(url, online=online)
    assert store.config.online_store.type == "redis"
    client = redis_client(redis_server.url)
    keys = [k for k in client.scan_iter(count=1000) if not k.startswith(b"streamflow:")]
    assert len(keys) >= USERS * 0.9  # the month's users, in Feast's Redis format
    assert client.hget(f"streamflow:online_month:{store.project}", "as_of") == MONTH.encode()
    with psycopg.connect(url) as conn:  # nothing went to the PostgreSQL online tables
        rows = conn.execute(
            "select coalesce(sum(n_live_tup), 0) from pg_stat_user_tables "
            "where schemaname = 'feast_online'"
        ).fetchone()[0]
        user = conn.execute(
            "select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
            "order by user_id limit 1",
            (MONTH,),
        ).fetchone()[0]
    assert rows == 0
    for view in online_views(store):  # Feast's registry knows the month was materialized
        registered = store.registry.get_feature_view(view.name, store.project, allow_cache=False)
        assert month_interval(date.fromisoformat(MONTH)) in registered.materialization_intervals

    port = free_port()
    server = subprocess.Popen(
        [STREAMFLOW, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout_s=300)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            ready = http.get("/ready")
            features = http.get(f"/features/{user}")
            predicted = http.get(f"/predict/{user}")
            # The user's hash gone from Redis: the API no longer finds them (it reads Redis).
            client.delete(*[k for k in keys if user.encode() in k])
            gone = http.get(f"/features/{user}")
    finally:
        server.terminate()
        server.wait(timeout=60)
        client.close()
    assert ready.status_code == 200, ready.text
    assert features.status_code == 200, features.text
    assert len(features.json()["features"]) == 14 and features.json()["as_of"] == MONTH
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["as_of"] == MONTH and predicted.json()["model_version"] >= 1
    assert gone.status_code == 404, gone.text
    print(f"\none {USERS}-user month through Redis: `streamflow run` {run_seconds:.0f} s")
