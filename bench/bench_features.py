"""Benchmark of StreamFlow's feature store paths against plain Feast 0.67, on this machine.

    .venv/bin/python bench/bench_features.py [--users 7043 1000000] [--baseline-users 7043]
                                             [--home bench-work/home] [--keep-server]

For each size: marts of two months (the contract's types, primary key (user_id, as_of), the
same shape as /work/shared/baseline-bench) in their own database on an embedded PostgreSQL
under --home, `feast apply`, then
  - the online write of month 1, then of month 2 (the monthly case: a month already online);
  - the month's training set: the point-in-time query read into pandas, and the whole
    training_set write (query + store in features.training_set);
  - get_online_features for one user through the feature service, in process (p50/p99), and
    the same read through StreamFlow's direct read (features.online_read, what serving uses);
  - for --baseline-users: plain Feast's `materialize` of the month and `get_historical_features`
    with a pandas entity frame, on the same repository, tables and data.
Every measurement runs in a child process, so its peak RSS (ru_maxrss) is its own, and on
settled tables (`settle`: VACUUM between steps, untimed), so autovacuum of the previous
step's bulk writes does not run during it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from streamflow_dagster.cli.summary import MART_TABLES

MONTHS = (date(2024, 1, 31), date(2024, 2, 29))
ONLINE_READS, ONLINE_WARMUP = 2000, 200
# Plain Feast at 1,000,000 users, measured on this machine kind (issue 3).
BASELINE_1M = {"materialize_s": 232.0, "peak_rss_mb": 6200, "get_historical_features_s": 31.5}

MARTS_SQL = """
create schema if not exists marts;
select setseed(0.42);
create table marts.subscriptions_profile_snapshots as
select 'u' || lpad(i::text, 7, '0') as user_id, m.as_of::date as as_of,
  date '2020-01-01' + mod(i, 1500) as signup_date,
  (array['Female','Male'])[1 + mod(i, 2)] as user_gender, random() < 0.16 as user_is_senior,
  random() < 0.48 as has_family, random() < 0.3 as has_dependents,
  (random() * 72)::bigint as months_active,
  (array['Month-to-month','One year','Two year'])[1 + (random() * 2)::int] as contract_type,
  random() < 0.6 as paperless_billing,
  round((18 + random() * 100)::numeric, 2)::float8 as monthly_fee,
  case when mod(i, 14) = 0 then null
    else round((random() * 8000)::numeric, 2)::float8 end as total_paid,
  (array['DSL','Fiber optic','No'])[1 + (random() * 2)::int] as net_service,
  random() < 0.4 as plan_stream_tv, random() < 0.4 as plan_stream_movies,
  random() < 0.3 as add_on_security, random() < 0.35 as add_on_backup,
  random() < 0.35 as add_on_device_protect, random() < 0.3 as add_on_support
from generate_series(1, %(users)s) i, (values ('2024-01-31'), ('2024-02-29')) m(as_of);
create table marts.usage_agg_30d_snapshots as
select 'u' || lpad(i::text, 7, '0') as user_id, m.as_of::date as as_of,
  round((random() * 60)::numeric, 1)::float8 as watch_hours_30d,
  round((5 + random() * 50)::numeric, 1)::float8 as avg_session_mins_7d,
  (1 + random() * 5)::bigint as unique_devices_30d, (random() * 9)::bigint as skips_7d,
  (random() * 5)::bigint as rebuffer_events_7d
from generate_series(1, %(users)s) i, (values ('2024-01-31'), ('2024-02-29')) m(as_of);
create table marts.payments_agg_90d_snapshots as
select 'u' || lpad(i::text, 7, '0') as user_id, m.as_of::date as as_of,
  (random() * random() * 3)::bigint as failed_payments_90d
from generate_series(1, %(users)s) i, (values ('2024-01-31'), ('2024-02-29')) m(as_of);
create table marts.support_agg_90d_snapshots as
select 'u' || lpad(i::text, 7, '0') as user_id, m.as_of::date as as_of,
  (random() * random() * 4)::bigint as support_tickets_90d,
  round((random() * 40)::numeric, 1)::float8 as ticket_avg_resolution_hrs_90d
from generate_series(1, %(users)s) i, (values ('2024-01-31'), ('2024-02-29')) m(as_of);
create table marts.churn_labels as
select 'u' || lpad(i::text, 7, '0') as user_id, m.as_of::date as as_of,
  random() < 0.07 as churn_label
from generate_series(1, %(users)s) i, (values ('2024-01-31'), ('2024-02-29')) m(as_of);
"""


# -- parent: data, children, report ---------------------------------------------------------
def prepare_database(server_url: str, users: int) -> str:
    from streamflow_dagster.platform.db import ensure_database, with_database

    name = f"bench_features_{users}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
    ensure_database(server_url, name)
    url = with_database(server_url, name)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in filter(str.strip, MARTS_SQL.split(";\n")):
            conn.execute(statement, {"users": users} if "%(users)s" in statement else None)
        for table in MART_TABLES:
            conn.execute(
                sql.SQL("alter table marts.{} add primary key (user_id, as_of)").format(
                    sql.Identifier(table)
                )
            )
    settle(url)
    print(
        f"  marts: {users:,} users x {len(MONTHS)} months in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return url


def settle(url: str) -> None:
    """VACUUM (FREEZE, ANALYZE) the database, untimed: what autovacuum does within a minute or
    two of a bulk write. A month's write and the online reads are then measured on settled
    tables, as in production, where a month passes between two writes."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum (freeze, analyze)")


def child(step: str, url: str, users: int) -> dict:
    """Run one measurement in a child process; returns its JSON result plus its peak RSS."""
    command = [sys.executable, __file__, "--child", step, "--url", url, "--child-users", str(users)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{step} failed (status {status}); output:\n{output}")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return result


def bench_size(server_url: str, users: int, baseline: bool) -> dict:
    print(f"\n== {users:,} users (load average {os.getloadavg()[0]:.2f})", flush=True)
    url = prepare_database(server_url, users)
    out = {"users": users, "apply": child("apply", url, users)}
    print(f"  feast apply: {out['apply']['seconds']:.2f} s", flush=True)
    if baseline:
        out["baseline_materialize"] = child("baseline_materialize", url, users)
        print(
            f"  plain Feast materialize: {out['baseline_materialize']['seconds']:.2f} s, "
            f"{out['baseline_materialize']['peak_rss_mb']} MB",
            flush=True,
        )
        settle(url)
        out["baseline_online_read"] = child("online_read", url, users)
        plain_read = out["baseline_online_read"]
        print(
            f"  get_online_features 1 user on Feast-written tables: "
            f"p50 {plain_read['p50_ms']} ms, p99 {plain_read['p99_ms']} ms",
            flush=True,
        )
    for month in MONTHS:
        settle(url)
        out[f"online_{month}"] = child(f"online:{month}", url, users)
        r = out[f"online_{month}"]
        print(
            f"  online write {month}: {r['seconds']:.2f} s, {r['entity_rows_per_s']:,} "
            f"entity-rows/s, {r['peak_rss_mb']} MB",
            flush=True,
        )
    settle(url)
    out["online_read"] = child("online_read", url, users)
    print(
        f"  get_online_features 1 user: p50 {out['online_read']['p50_ms']} ms, "
        f"p99 {out['online_read']['p99_ms']} ms",
        flush=True,
    )
    out["direct_read"] = child("direct_read", url, users)
    print(
        f"  direct online read 1 user: p50 {out['direct_read']['p50_ms']} ms, "
        f"p99 {out['direct_read']['p99_ms']} ms",
        flush=True,
    )
    out["training"] = child("training", url, users)
    print(
        f"  training set: query to pandas {out['training']['query_to_pandas_s']:.2f} s, "
        f"stored {out['training']['write_s']:.2f} s",
        flush=True,
    )
    if baseline:
        out["baseline_historical"] = child("baseline_historical", url, users)
        print(
            f"  plain get_historical_features: {out['baseline_historical']['seconds']:.2f} s",
            flush=True,
        )
    return out


def report(results: list[dict]) -> None:
    print("\n| measurement | users | StreamFlow | plain Feast 0.67 |")
    print("|---|---:|---:|---:|")
    for r in results:
        n, write = r["users"], r[f"online_{MONTHS[1]}"]
        first = r[f"online_{MONTHS[0]}"]
        base = r.get("baseline_materialize")
        plain = (
            f"{base['seconds']:.2f} s, {base['entity_rows_per_s']:,} entity-rows/s, "
            f"{base['peak_rss_mb']} MB"
            if base
            else _quoted(n, "materialize")
        )
        print(
            f"| online write of a month (next month) | {n:,} | {write['seconds']:.2f} s, "
            f"{write['entity_rows_per_s']:,} entity-rows/s ({write['online_rows_per_s']:,} "
            f"online rows/s), peak RSS {write['peak_rss_mb']} MB | {plain} |"
        )
        print(f"| online write of the first month | {n:,} | {first['seconds']:.2f} s | |")
        hist = r.get("baseline_historical")
        plain = f"{hist['seconds']:.2f} s" if hist else _quoted(n, "historical")
        print(
            f"| training set: point-in-time query to pandas | {n:,} | "
            f"{r['training']['query_to_pandas_s']:.2f} s | {plain} |"
        )
        print(
            f"| training set stored (query + replace month) | {n:,} | "
            f"{r['training']['write_s']:.2f} s | |"
        )
        read, plain_read = r["online_read"], r.get("baseline_online_read")
        plain = f"{plain_read['p50_ms']}/{plain_read['p99_ms']} ms" if plain_read else "not run"
        print(
            f"| get_online_features, 1 user, 14 features (p50/p99) | {n:,} | "
            f"{read['p50_ms']}/{read['p99_ms']} ms | {plain} |"
        )
        direct = r["direct_read"]
        print(
            f"| direct online read (serving's path), 1 user, 14 features (p50/p99) | {n:,} | "
            f"{direct['p50_ms']}/{direct['p99_ms']} ms | |"
        )
        print(f"| feast apply (Python API) | {n:,} | {r['apply']['seconds']:.2f} s | |")


def _quoted(users: int, what: str) -> str:
    if users != 1_000_000:
        return "not run"
    if what == "materialize":
        return (
            f"{BASELINE_1M['materialize_s']:.0f} s, {BASELINE_1M['peak_rss_mb']} MB "
            "(issue 3, not re-run)"
        )
    return f"{BASELINE_1M['get_historical_features_s']} s (issue 3, not re-run)"


# -- children: one measurement each ---------------------------------------------------------
def run_child(step: str, url: str, users: int) -> dict:
    from streamflow_dagster.features.online import materialize_month
    from streamflow_dagster.features.registry import apply_repo
    from streamflow_dagster.features.specs import online_views, service_views
    from streamflow_dagster.features.store import (
        FEATURE_SERVICE,
        feature_store,
        prepare_feature_database,
    )
    from streamflow_dagster.features.training import (
        event_time,
        point_in_time_query,
        query_params,
        read_frame,
    )
    from streamflow_dagster.features.training_table import write_training_set
    from streamflow_dagster.platform.settings import FEATURE_REPO_DIR

    if step == "apply":
        prepare_feature_database(url)  # what the feast_registry asset does before its apply
    store = feature_store(url)
    month = MONTHS[1]
    if step == "apply":
        started = time.perf_counter()
        apply_repo(store, FEATURE_REPO_DIR)
        return {"seconds": time.perf_counter() - started}
    if step.startswith("online:"):
        views = online_views(store)
        started = time.perf_counter()
        write = materialize_month(
            url,
            views,
            store.config.online_store.db_schema,
            date.fromisoformat(step.split(":", 1)[1]),
        )
        seconds = time.perf_counter() - started
        assert write.written and write.rows_written == users * 14
        return {
            "seconds": seconds,
            "entity_rows_per_s": round(users * len(views) / seconds),
            "online_rows_per_s": round(write.rows_written / seconds),
        }
    if step == "online_read":
        service = store.get_feature_service(FEATURE_SERVICE)

        def feast_read(user: str) -> dict:
            return store.get_online_features(
                features=service, entity_rows=[{"user_id": user}]
            ).to_dict()

        values, ms = timed_reads(feast_read, users)
        assert all(values[name][0] is not None for name in values), values
        return percentiles(ms)
    if step == "direct_read":
        from streamflow_dagster.features.online_read import OnlineReader

        reader = OnlineReader(
            service_views(store, FEATURE_SERVICE), store.config.online_store.db_schema
        )
        with psycopg.connect(url, autocommit=True) as conn:
            values, ms = timed_reads(lambda user: reader.read(conn, [user])[user], users)
            # The direct read's answer is Feast's answer (tests compare every user; here one).
            expected = store.get_online_features(
                features=store.get_feature_service(FEATURE_SERVICE),
                entity_rows=[{"user_id": values.user_id}],
            ).to_dict()
        assert values.complete
        assert values.values == {name: expected[name][0] for name in reader.features}
        return percentiles(ms)
    if step == "training":
        views = service_views(store, FEATURE_SERVICE)
        with psycopg.connect(url) as conn:
            conn.execute("set timezone = 'UTC'")
            started = time.perf_counter()
            frame = read_frame(conn, point_in_time_query(views), query_params(month))
            query_s = time.perf_counter() - started
            assert len(frame) == users
            started = time.perf_counter()
            written = write_training_set(conn, views, FEATURE_SERVICE, month)
            write_s = time.perf_counter() - started
        assert written.rows == users
        return {"query_to_pandas_s": query_s, "write_s": write_s}
    if step == "baseline_materialize":
        start = event_time(month)
        started = time.perf_counter()
        store.materialize(start - timedelta(hours=1), start + timedelta(hours=1))
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "entity_rows_per_s": round(users * 4 / seconds)}
    if step == "baseline_historical":
        views = service_views(store, FEATURE_SERVICE)
        from streamflow_dagster.features.training import entity_query

        with psycopg.connect(url) as conn:
            entities = read_frame(conn, entity_query(views), query_params(month))
        started = time.perf_counter()
        frame = store.get_historical_features(
            entity_df=entities, features=store.get_feature_service(FEATURE_SERVICE)
        ).to_df()
        seconds = time.perf_counter() - started
        assert len(frame) == users
        return {"seconds": seconds}
    raise ValueError(f"unknown step {step}")


def timed_reads(read, users: int) -> tuple[object, np.ndarray]:
    """Reads one random user at a time; (the last answer, latencies in ms after warm-up)."""
    rng = random.Random(7)
    ids = [f"u{rng.randint(1, users):07d}" for _ in range(ONLINE_READS + ONLINE_WARMUP)]
    latencies = []
    for position, user in enumerate(ids):
        started = time.perf_counter()
        answer = read(user)
        if position >= ONLINE_WARMUP:
            latencies.append(time.perf_counter() - started)
    return answer, np.array(latencies) * 1e3


def percentiles(ms: np.ndarray) -> dict:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[7043, 1_000_000])
    parser.add_argument(
        "--baseline-users",
        type=int,
        nargs="*",
        default=[7043],
        help="sizes at which plain Feast is measured too (1M: ~4 min, ~6 GB)",
    )
    parser.add_argument("--home", default="bench-work/home", help="state folder of the server")
    parser.add_argument("--keep-server", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--child-users", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.url, args.child_users)))
        return

    from streamflow_dagster.platform.embedded_pg import EmbeddedPostgres

    server = EmbeddedPostgres(Path(args.home).resolve() / "postgres")
    status = server.start()
    print(f"embedded PostgreSQL on port {status.port}; {os.cpu_count()} cores", flush=True)
    try:
        results = [
            bench_size(status.url("postgres"), n, n in args.baseline_users) for n in args.users
        ]
    finally:
        if not args.keep_server:
            server.stop()
    report(results)


if __name__ == "__main__":
    main()
