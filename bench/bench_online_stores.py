"""The online store, PostgreSQL beside Redis, in the same run: month writes and one-user reads.

    .venv/bin/python bench/bench_online_stores.py [--users 7043 1000000]
                                                 [--feast-users 7043] [--home bench-work/stores]

For each size: the marts of two months (bench_features' data plus churn_v2's customer profile)
in their own database on an embedded PostgreSQL under --home, `feast apply`, then for each
store (PostgreSQL's tables; Redis: Debian's redis-server on a free loopback port, started here):
  - the online write of month 1 into an empty store, then of month 2 (a month already online);
  - one random user's churn_v1 features through the API's direct read, p50/p99 over 2,000
    reads (features.online_read for PostgreSQL, features.online_redis for Redis);
  - at --feast-users: Feast's own `materialize` of the month into Redis (online_write_batch),
    and `get_online_features` of one user through Feast's Python API on Redis.
Every write runs in a child process (its peak RSS is its own); tables are VACUUMed between
steps (untimed), as in bench_features. The load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers, bench.*

from bench.bench_features import (  # noqa: E402
    MONTHS,
    percentiles,
    prepare_database,
    settle,
    timed_reads,
)

CUSTOMER_PROFILE_SQL = """
create table marts.customer_profile_snapshots as
select user_id, as_of, contract_type, add_on_security, add_on_backup, add_on_device_protect,
  add_on_support, user_is_senior, has_family, has_dependents, total_paid,
  (add_on_security::int + add_on_backup::int + add_on_device_protect::int
   + add_on_support::int)::bigint as add_on_count,
  total_paid / nullif(months_active, 0) as paid_per_month_active,
  monthly_fee - total_paid / nullif(months_active, 0) as fee_above_average
from marts.subscriptions_profile_snapshots;
alter table marts.customer_profile_snapshots add primary key (user_id, as_of)
"""


def load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def child(step: str, url: str, users: int, redis_url: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        step,
        "--url",
        url,
        "--child-users",
        str(users),
        "--redis-url",
        redis_url,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{step} failed (status {status}); output:\n{output}")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    result["load"] = load()
    return result


def run_child(step: str, url: str, users: int, redis_at: str) -> dict:
    from streamflow_dagster.features.online_read import OnlineReader
    from streamflow_dagster.features.online_redis import RedisOnlineReader, redis_client
    from streamflow_dagster.features.online_store import redis_url, write_month
    from streamflow_dagster.features.registry import apply_repo
    from streamflow_dagster.features.specs import online_views, service_views
    from streamflow_dagster.features.store import (
        FEATURE_SERVICE,
        feature_store,
        prepare_feature_database,
    )
    from streamflow_dagster.features.training import event_time
    from streamflow_dagster.platform.settings import (
        FEATURE_REPO_DIR,
        POSTGRES_ONLINE_STORE,
        REDIS_ONLINE_STORE,
        OnlineStoreSettings,
    )

    kind, _, rest = step.partition(":")
    online = (
        OnlineStoreSettings(REDIS_ONLINE_STORE, redis_at)
        if kind in ("redis", "feast_redis")
        else OnlineStoreSettings(POSTGRES_ONLINE_STORE)
    )
    if step == "apply":
        prepare_feature_database(url)
    store = feature_store(url, online=online)
    if step == "apply":
        started = time.perf_counter()
        apply_repo(store, FEATURE_REPO_DIR)
        return {"seconds": time.perf_counter() - started}
    action, _, month = rest.partition(":")
    if action == "write":
        views = online_views(store)
        started = time.perf_counter()
        write = write_month(url, store, views, date.fromisoformat(month))
        seconds = time.perf_counter() - started
        assert write.written and write.users_by_view == {v.name: users for v in views}, write
        out = {
            "seconds": seconds,
            "entity_rows_per_s": round(users * len(views) / seconds),
            "values": write.rows_written,
        }
        if kind == "redis":
            client = redis_client(redis_at)
            out["redis_used_mb"] = round(client.info("memory")["used_memory"] / 2**20)
            client.close()
        return out
    if action == "read":
        views = service_views(store, FEATURE_SERVICE)
        if kind == "redis":
            reader = RedisOnlineReader(views, redis_url(store), store.project)
            values, ms = timed_reads(lambda user: reader.read(None, [user])[user], users)
        else:
            reader = OnlineReader(views, store.config.online_store.db_schema)
            with psycopg.connect(url, autocommit=True) as conn:
                values, ms = timed_reads(lambda user: reader.read(conn, [user])[user], users)
        expected = store.get_online_features(
            features=store.get_feature_service(FEATURE_SERVICE),
            entity_rows=[{"user_id": values.user_id}],
        ).to_dict()
        assert values.complete and values.values == {n: expected[n][0] for n in reader.features}
        return percentiles(ms)
    if action == "materialize":  # Feast's own write into Redis (online_write_batch)
        client = redis_client(redis_at)
        client.flushdb()
        client.close()
        start = event_time(month)
        started = time.perf_counter()
        store.materialize(start - timedelta(hours=1), start + timedelta(hours=1))
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "entity_rows_per_s": round(users * 5 / seconds)}
    if action == "get_online_features":
        service = store.get_feature_service(FEATURE_SERVICE)
        values, ms = timed_reads(
            lambda user: store.get_online_features(
                features=service, entity_rows=[{"user_id": user}]
            ).to_dict(),
            users,
        )
        assert all(values[name][0] is not None for name in values), values
        return percentiles(ms)
    raise ValueError(f"unknown step {step}")


def bench_size(server_url: str, redis_server, users: int, feast: bool) -> dict:
    from streamflow_dagster.features.online_redis import redis_client

    print(f"\n== {users:,} users (load average {load()})", flush=True)
    url = prepare_database(server_url, users)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in filter(str.strip, CUSTOMER_PROFILE_SQL.split(";\n")):
            conn.execute(statement)
    settle(url)
    client = redis_client(redis_server.url)
    client.flushdb()
    client.close()
    out = {"users": users, "apply": child("apply", url, users, redis_server.url)}
    print(f"  feast apply: {out['apply']['seconds']:.2f} s", flush=True)
    for kind in ("postgres", "redis"):
        for month in MONTHS:
            settle(url)
            r = out[f"{kind}_write_{month}"] = child(
                f"{kind}:write:{month}", url, users, redis_server.url
            )
            extra = f", Redis memory {r['redis_used_mb']} MB" if "redis_used_mb" in r else ""
            print(
                f"  {kind} online write {month}: {r['seconds']:.2f} s "
                f"({r['entity_rows_per_s']:,} entity-rows/s), {r['peak_rss_mb']} MB{extra}; "
                f"load {r['load']}",
                flush=True,
            )
        settle(url)
        r = out[f"{kind}_read"] = child(f"{kind}:read:{MONTHS[1]}", url, users, redis_server.url)
        print(
            f"  {kind} direct read, 1 user, churn_v1: p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms; load {r['load']}",
            flush=True,
        )
    if feast:
        r = out["feast_redis_read"] = child(
            f"feast_redis:get_online_features:{MONTHS[1]}", url, users, redis_server.url
        )
        print(
            f"  Feast get_online_features on Redis, 1 user: p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms; load {r['load']}",
            flush=True,
        )
        r = out["feast_redis_materialize"] = child(
            f"feast_redis:materialize:{MONTHS[1]}", url, users, redis_server.url
        )
        print(
            f"  Feast's own materialize into Redis: {r['seconds']:.2f} s "
            f"({r['entity_rows_per_s']:,} entity-rows/s), {r['peak_rss_mb']} MB; "
            f"load {r['load']}",
            flush=True,
        )
    return out


def report(results: list[dict]) -> None:
    print("\n| figure | users | PostgreSQL | Redis | load (1/5/15 min) |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        n = r["users"]
        for month, label in zip(MONTHS, ("first month", "next month"), strict=True):
            pg, rd = r[f"postgres_write_{month}"], r[f"redis_write_{month}"]
            print(
                f"| online write, {label} | {n:,} | {pg['seconds']:.2f} s, {pg['peak_rss_mb']} MB"
                f" | {rd['seconds']:.2f} s, {rd['peak_rss_mb']} MB | {pg['load']} / {rd['load']} |"
            )
        pg, rd = r["postgres_read"], r["redis_read"]
        print(
            f"| direct read 1 user p50 / p99 | {n:,} | {pg['p50_ms']} / {pg['p99_ms']} ms | "
            f"{rd['p50_ms']} / {rd['p99_ms']} ms | {pg['load']} / {rd['load']} |"
        )
        if "feast_redis_materialize" in r:
            fm, fr = r["feast_redis_materialize"], r["feast_redis_read"]
            print(
                f"| Feast's own Redis materialize / get_online_features p50, p99 | {n:,} | | "
                f"{fm['seconds']:.2f} s / {fr['p50_ms']}, {fr['p99_ms']} ms | {fm['load']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[7043, 1_000_000])
    parser.add_argument("--feast-users", type=int, nargs="*", default=[7043])
    parser.add_argument("--home", default="bench-work/stores", help="state folder of the servers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--child-users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.url, args.child_users, args.redis_url)))
        return

    from streamflow_dagster.platform.embedded_pg import EmbeddedPostgres
    from tests.servers import RedisServer

    home = Path(args.home).resolve()
    server = EmbeddedPostgres(home / "postgres")
    status = server.start()
    redis_dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    print(f"embedded PostgreSQL on port {status.port}; {os.cpu_count()} cores", flush=True)
    try:
        with RedisServer(redis_dir) as redis_server:
            print(f"redis-server on port {redis_server.port}", flush=True)
            results = [
                bench_size(status.url("postgres"), redis_server, n, n in args.feast_users)
                for n in args.users
            ]
    finally:
        server.stop()
    report(results)


if __name__ == "__main__":
    main()
