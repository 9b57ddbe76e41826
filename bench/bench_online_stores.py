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
Each store's steps run in one child process (its peak RSS is its own; one process per store
rather than per step keeps the run short on a loaded machine); tables are VACUUMed before
each store (untimed), as in bench_features. The load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
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


def written_months() -> tuple:
    """Both months, or with --one-month (BENCH_ONE_MONTH=1) only the first, into an empty
    store: for a loaded machine, where two 1,000,000-user Redis writes take too long."""
    return MONTHS[:1] if os.environ.get("BENCH_ONE_MONTH") == "1" else MONTHS


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
    """One store's steps in this process: `<store>` writes both months, then reads."""
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

    online = (
        OnlineStoreSettings(REDIS_ONLINE_STORE, redis_at)
        if step in ("redis", "feast_redis")
        else OnlineStoreSettings(POSTGRES_ONLINE_STORE)
    )
    if step == "apply":
        prepare_feature_database(url)
    store = feature_store(url, online=online)
    if step == "apply":
        started = time.perf_counter()
        apply_repo(store, FEATURE_REPO_DIR)
        return {"seconds": time.perf_counter() - started}
    out: dict = {}
    if step in ("postgres", "redis"):
        views = online_views(store)
        for month in written_months():
            started = time.perf_counter()
            write = write_month(url, store, views, month)
            seconds = time.perf_counter() - started
            assert write.written and write.users_by_view == {v.name: users for v in views}
            out[f"write_{month}"] = {
                "seconds": seconds,
                "entity_rows_per_s": round(users * len(views) / seconds),
                "load": load(),
            }
            if step == "redis":
                client = redis_client(redis_at)
                out[f"write_{month}"]["redis_used_mb"] = round(
                    client.info("memory")["used_memory"] / 2**20
                )
                client.close()
            print(f"    {step} write {month}: {seconds:.2f} s", file=sys.stderr, flush=True)
        views = service_views(store, FEATURE_SERVICE)
        if step == "redis":
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
        out["read"] = {**percentiles(ms), "load": load()}
        return out
    if step == "feast_redis":  # Feast's own read on our Redis data, then its own write
        service = store.get_feature_service(FEATURE_SERVICE)
        values, ms = timed_reads(
            lambda user: store.get_online_features(
                features=service, entity_rows=[{"user_id": user}]
            ).to_dict(),
            users,
        )
        assert all(values[name][0] is not None for name in values), values
        out["read"] = {**percentiles(ms), "load": load()}
        client = redis_client(redis_at)
        client.flushdb()
        client.close()
        start = event_time(MONTHS[1])
        started = time.perf_counter()
        store.materialize(start - timedelta(hours=1), start + timedelta(hours=1))
        seconds = time.perf_counter() - started
        out["materialize"] = {
            "seconds": seconds,
            "entity_rows_per_s": round(users * 5 / seconds),
            "load": load(),
        }
        return out
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
        settle(url)
        r = out[kind] = child(kind, url, users, redis_server.url)
        for month in written_months():
            w = r[f"write_{month}"]
            extra = f", Redis memory {w['redis_used_mb']} MB" if "redis_used_mb" in w else ""
            print(
                f"  {kind} online write {month}: {w['seconds']:.2f} s "
                f"({w['entity_rows_per_s']:,} entity-rows/s){extra}; load {w['load']}",
                flush=True,
            )
        print(
            f"  {kind} direct read, 1 user, churn_v1: p50 {r['read']['p50_ms']} ms, "
            f"p99 {r['read']['p99_ms']} ms; load {r['read']['load']}; "
            f"process peak RSS {r['peak_rss_mb']} MB",
            flush=True,
        )
    if feast:
        r = out["feast_redis"] = child("feast_redis", url, users, redis_server.url)
        print(
            f"  Feast get_online_features on Redis, 1 user: p50 {r['read']['p50_ms']} ms, "
            f"p99 {r['read']['p99_ms']} ms; load {r['read']['load']}",
            flush=True,
        )
        m = r["materialize"]
        print(
            f"  Feast's own materialize into Redis: {m['seconds']:.2f} s "
            f"({m['entity_rows_per_s']:,} entity-rows/s); load {m['load']}",
            flush=True,
        )
    return out


def report(results: list[dict]) -> None:
    print("\n| figure | users | PostgreSQL | Redis | load (1/5/15 min) PG; Redis |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        n, pg, rd = r["users"], r["postgres"], r["redis"]
        for month, label in zip(MONTHS, ("first month", "next month"), strict=True):
            if f"write_{month}" not in pg:
                continue
            a, b = pg[f"write_{month}"], rd[f"write_{month}"]
            print(
                f"| online write, {label} | {n:,} | {a['seconds']:.2f} s | {b['seconds']:.2f} s"
                f" | {a['load']}; {b['load']} |"
            )
        a, b = pg["read"], rd["read"]
        print(
            f"| direct read 1 user p50 / p99 | {n:,} | {a['p50_ms']} / {a['p99_ms']} ms | "
            f"{b['p50_ms']} / {b['p99_ms']} ms | {a['load']}; {b['load']} |"
        )
        print(
            f"| peak RSS of the writing process | {n:,} | {pg['peak_rss_mb']} MB | "
            f"{rd['peak_rss_mb']} MB | |"
        )
        if "feast_redis" in r:
            m, g = r["feast_redis"]["materialize"], r["feast_redis"]["read"]
            print(
                f"| Feast's own: materialize into Redis; get_online_features p50 / p99 | {n:,} |"
                f" | {m['seconds']:.2f} s; {g['p50_ms']} / {g['p99_ms']} ms | {m['load']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[7043, 1_000_000])
    parser.add_argument("--feast-users", type=int, nargs="*", default=[7043])
    parser.add_argument("--home", default="bench-work/stores", help="state folder of the servers")
    parser.add_argument(
        "--one-month", action="store_true", help="write only the first month into each store"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--child-users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_month:
        os.environ["BENCH_ONE_MONTH"] = "1"  # the children inherit it
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
