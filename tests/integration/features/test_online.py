"""The fast online write on the real PostgreSQL and real Feast: Feast's own bytes, newest wins."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import psycopg
import pytest

from streamflow_dagster.defs.features import (
    ONLINE_CONSISTENCY_CHECK,
    feast_registry,
    online_features,
)
from streamflow_dagster.defs.resources import FeastResource, WarehouseResource
from streamflow_dagster.features.online import materialize_month, online_month
from streamflow_dagster.features.registry import apply_repo
from streamflow_dagster.features.specs import online_views
from streamflow_dagster.features.store import (
    FEATURE_SERVICE,
    feature_names,
    feature_store,
    prepare_feature_database,
)
from streamflow_dagster.platform.settings import FEATURE_REPO_DIR
from tests.integration.conftest import insert_rows

pytestmark = pytest.mark.integration

ONLINE_SCHEMA = "feast_online"
LONG_ID = "u" + "x" * 300  # a key longer than 255 bytes: a 2-byte length in the entity key


def applied_store(url: str):
    prepare_feature_database(url)
    store = feature_store(url)
    apply_repo(store, FEATURE_REPO_DIR)
    return store


def online_rows(url: str, views) -> dict[str, list[tuple]]:
    """Every column of every online table, in key order."""
    with psycopg.connect(url) as conn:
        return {
            v.name: conn.execute(
                f'select * from {ONLINE_SCHEMA}."{v.online_table}" order by 1, 2'
            ).fetchall()
            for v in views
        }


def online_layout(url: str) -> tuple:
    """Columns, indexes and constraints of the online schema (what Feast's apply creates)."""
    with psycopg.connect(url) as conn:
        return (
            conn.execute(
                "select table_name, column_name, data_type, is_nullable, ordinal_position "
                "from information_schema.columns where table_schema = %s order by 1, 5",
                (ONLINE_SCHEMA,),
            ).fetchall(),
            conn.execute(
                "select indexname, indexdef from pg_indexes where schemaname = %s order by 1",
                (ONLINE_SCHEMA,),
            ).fetchall(),
            conn.execute(
                "select conname, contype, conrelid::regclass::text from pg_constraint "
                "where connamespace = %s::regnamespace order by 1",
                (ONLINE_SCHEMA,),
            ).fetchall(),
        )


def add_edge_cases(url: str, as_of: str) -> None:
    """Users whose values exercise every branch of the encoders (NULL, NaN, varints...)."""
    doubles = [None, float("inf"), -0.0, 1e-7, 1e16, 1234567890123456.5, 0.1 + 0.2]
    ids = [f"edge-{i}" for i in range(len(doubles))] + ["ü-用户", LONG_ID]
    count = len(ids)
    profile = pd.DataFrame(
        {
            "user_id": ids,
            "as_of": as_of,
            "months_active": [-1, 0, 127, 128, 16383, 16384, 2**40, -(2**62), None],
            "paperless_billing": [True, False, None] * 3,
            "plan_stream_tv": [None, True, False] * 3,
            "plan_stream_movies": [False] * count,
            "monthly_fee": [*doubles, None, 19.5],
            "net_service": [
                None,
                "",
                "dsl",
                "fiber_optic",
                "x" * 200,
                "ñandú",
                "none",
                "dsl",
                "dsl",
            ],
        }
    )
    profile["months_active"] = profile["months_active"].astype("Int64")
    with psycopg.connect(url) as conn:
        insert_rows(conn, "subscriptions_profile_snapshots", profile)
        usage = pd.DataFrame(
            {
                "user_id": ids,
                "as_of": as_of,
                "watch_hours_30d": doubles + [2.0, None],
                "unique_devices_30d": pd.array([None, *range(count - 1)], "Int64"),
            }
        )
        insert_rows(conn, "usage_agg_30d_snapshots", usage)
        # NaN (not NULL) in a double column: Feast writes it as an unset value, like NULL.
        for table, column in [
            ("subscriptions_profile_snapshots", "monthly_fee"),
            ("usage_agg_30d_snapshots", "watch_hours_30d"),
        ]:
            conn.execute(f"update marts.{table} set {column} = 'NaN' where user_id = 'edge-0'")


def test_fast_write_is_byte_identical_to_feast_materialize(demo_marts):
    url, months = demo_marts
    month = months[1]
    add_edge_cases(url, month)
    store = applied_store(url)
    views = online_views(store)
    layout_after_apply = online_layout(url)

    as_of = date.fromisoformat(month)
    start = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    store.materialize(start - timedelta(hours=1), start + timedelta(hours=1))
    written_by_feast = online_rows(url, views)
    assert sum(map(len, written_by_feast.values())) > 300 * 14

    write = materialize_month(url, views, ONLINE_SCHEMA, as_of)

    assert write.written and write.online_as_of == as_of
    assert online_rows(url, views) == written_by_feast
    assert online_layout(url) == layout_after_apply


def test_online_values_equal_the_newest_month_offline(demo_marts):
    """(c) Feast's consistency test: online reads equal the offline rows of the newest month."""
    url, months = demo_marts
    store = applied_store(url)
    views = online_views(store)
    for month in months:
        materialize_month(url, views, ONLINE_SCHEMA, date.fromisoformat(month))
    names = feature_names(store)
    with psycopg.connect(url) as conn:
        offline = pd.DataFrame(
            conn.execute(
                "select p.user_id, p.net_service, p.paperless_billing, p.plan_stream_movies, "
                "p.plan_stream_tv, p.months_active, p.monthly_fee, u.rebuffer_events_7d, "
                "u.unique_devices_30d, u.watch_hours_30d, u.skips_7d, u.avg_session_mins_7d, "
                "f.failed_payments_90d, s.support_tickets_90d, s.ticket_avg_resolution_hrs_90d "
                "from marts.subscriptions_profile_snapshots p "
                "left join marts.usage_agg_30d_snapshots u using (user_id, as_of) "
                "left join marts.payments_agg_90d_snapshots f using (user_id, as_of) "
                "left join marts.support_agg_90d_snapshots s using (user_id, as_of) "
                "where p.as_of = %s order by md5(p.user_id) limit 50",
                (months[-1],),
            ).fetchall(),
            columns=["user_id", *names],
        )
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{"user_id": u} for u in offline["user_id"]],
    ).to_df()
    assert len(names) == 14
    pd.testing.assert_frame_equal(
        online[["user_id", *names]], offline, check_dtype=False, check_exact=True
    )


def test_backfilling_an_older_month_keeps_the_newest_online(demo_marts):
    """(d) Materialize March, then January: online still holds March, whatever the order."""
    url, months = demo_marts
    january, march = date.fromisoformat(months[0]), date.fromisoformat(months[2])
    store = applied_store(url)
    views = online_views(store)

    materialize_month(url, views, ONLINE_SCHEMA, march)
    march_rows = online_rows(url, views)
    backfill = materialize_month(url, views, ONLINE_SCHEMA, january)

    assert not backfill.written and backfill.online_as_of == march
    assert online_rows(url, views) == march_rows
    with psycopg.connect(url) as conn:
        assert online_month(conn) == march
        churned = conn.execute(
            "select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
            "except select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
            "limit 5",
            (january, march),
        ).fetchall()
    assert churned, "the demo data has users who left before March"
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{"user_id": u} for (u,) in churned],
    ).to_dict(include_event_timestamps=True)
    # Absent from the newest month: no features at all, never January's values as current.
    assert all(value is None for name in feature_names(store) for value in online[name])


def test_unknown_user_returns_no_features_not_zeros(demo_marts):
    """(e) A user the store never saw gets None for every feature."""
    url, months = demo_marts
    store = applied_store(url)
    materialize_month(url, online_views(store), ONLINE_SCHEMA, date.fromisoformat(months[-1]))
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{"user_id": "nobody-42"}],
    ).to_dict()
    assert all(online[name] == [None] for name in feature_names(store))


def test_online_features_asset_newest_month_wins_in_any_order(demo_marts):
    """The Dagster assets: registry applied, months materialized newest first, check passes."""
    url, months = demo_marts
    resources = {"warehouse": WarehouseResource(database_url=url), "feast": FeastResource()}
    instance = dg.DagsterInstance.ephemeral()
    applied = dg.materialize([feast_registry], instance=instance, resources=resources)
    metadata = applied.asset_materializations_for_node("feast_registry")[0].metadata
    assert metadata["feature_count"].value == 26  # churn_v1's 14 + customer_profile_fv's 12

    results = {}
    for month in (months[2], months[0]):
        result = dg.materialize(
            [online_features],
            partition_key=month,
            instance=instance,
            resources=resources,
        )
        materialization = result.asset_materializations_for_node("online_features")[0]
        checks = result.get_asset_check_evaluations()
        assert [c.check_name for c in checks if c.passed] == [ONLINE_CONSISTENCY_CHECK]
        results[month] = materialization.metadata
    assert results[months[2]]["written"].value is True
    assert results[months[0]]["written"].value is False
    assert results[months[0]]["online_month"].value == months[2]


def test_concurrent_month_writes_end_with_the_newest_month(demo_marts):
    """Two backfill runs at once: the advisory lock serialises them, the newest month wins."""
    from concurrent.futures import ThreadPoolExecutor

    url, months = demo_marts
    store = applied_store(url)
    views = online_views(store)
    newest = date.fromisoformat(months[2])
    with ThreadPoolExecutor(2) as pool:
        writes = list(
            pool.map(
                lambda month: materialize_month(
                    url, views, ONLINE_SCHEMA, date.fromisoformat(month)
                ),
                [months[2], months[0]],
            )
        )
    assert {w.online_as_of for w in writes} <= {newest, date.fromisoformat(months[0])}
    with psycopg.connect(url) as conn:
        assert online_month(conn) == newest
        stamps = {
            row[0]
            for v in views
            for row in conn.execute(
                f'select distinct event_ts from {ONLINE_SCHEMA}."{v.online_table}"'
            )
        }
        leftovers = conn.execute(
            "select count(*) from pg_tables where schemaname = %s and tablename like %s",
            (ONLINE_SCHEMA, "streamflow_stage_%"),
        ).fetchone()[0]
    assert stamps == {datetime(newest.year, newest.month, newest.day, tzinfo=UTC)}
    assert leftovers == 0


def test_feast_cli_works_by_hand_from_the_repository(demo_marts, monkeypatch):
    """`feast apply`, `plan` and `materialize` in feature_repo/ with the documented variables
    (the CLI's own code, run in this process: a new process would only import feast again)."""
    from click.testing import CliRunner
    from feast.cli.cli import cli

    from streamflow_dagster.features.store import feast_env

    url, months = demo_marts
    prepare_feature_database(url)  # the platform's first apply does this; see feature_repo/README
    for name, value in feast_env(url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(FEATURE_REPO_DIR)
    as_of = date.fromisoformat(months[2])
    commands = [["apply"], ["plan"], ["materialize", f"{as_of}T00:00:00", f"{as_of}T01:00:00"]]
    for command in commands:
        done = CliRunner().invoke(cli, command, catch_exceptions=False)
        assert done.exit_code == 0, (command, done.output[-2000:])
    store = feature_store(url)
    with psycopg.connect(url) as conn:
        user = conn.execute(
            "select user_id from marts.subscriptions_profile_snapshots where as_of = %s limit 1",
            (as_of,),
        ).fetchone()[0]
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE), entity_rows=[{"user_id": user}]
    ).to_dict()
    assert online["monthly_fee"][0] is not None


def test_double_bytes_without_reverse_match_python(database_url):
    """The pre-PostgreSQL-18 path (no reverse(bytea)) encodes doubles as struct.pack does."""
    import struct

    from psycopg import sql

    from streamflow_dagster.features.encoding import double_le

    values = [0.0, -0.0, 1.5, -2.25e-300, 1e308, 0.1 + 0.2, float("inf")]
    column = sql.SQL("x")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("select {}, {} from unnest(%s::float8[]) x").format(
                double_le(column, has_bytea_reverse=False), double_le(column, True)
            ),
            (values,),
        ).fetchall()
    assert [(bytes(a), bytes(b)) for a, b in rows] == [
        (struct.pack("<d", v), struct.pack("<d", v)) for v in values
    ]
