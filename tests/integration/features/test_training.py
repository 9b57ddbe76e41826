"""Point-in-time training sets on the real PostgreSQL and real Feast: no leakage, Feast's rows."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
import psycopg
import pytest

from streamflow_dagster.definitions import defs
from streamflow_dagster.defs.features import (
    LABELS_LANDED,
    LABELS_LANDED_CHECK,
    feast_registry,
    training_set,
)
from streamflow_dagster.defs.resources import FeastResource, WarehouseResource
from streamflow_dagster.features.registry import apply_repo
from streamflow_dagster.features.specs import service_views
from streamflow_dagster.features.store import (
    FEATURE_SERVICE,
    feature_names,
    feature_store,
    prepare_feature_database,
)
from streamflow_dagster.features.training import (
    historical_features_via_feast,
    point_in_time_query,
    query_params,
    read_frame,
)
from streamflow_dagster.features.training_table import (
    load_training_set,
    training_set_status,
    write_training_set,
)
from streamflow_dagster.platform.settings import FEATURE_REPO_DIR
from tests.integration.conftest import insert_rows

pytestmark = pytest.mark.integration

CANARY = 987654.25  # a value no real feature takes


def build(url: str, month: str) -> pd.DataFrame:
    prepare_feature_database(url)
    store = feature_store(url)
    apply_repo(store, FEATURE_REPO_DIR)
    with psycopg.connect(url) as conn:
        write_training_set(
            conn, service_views(store, FEATURE_SERVICE), FEATURE_SERVICE, date.fromisoformat(month)
        )
        return load_training_set(conn, date.fromisoformat(month))


def independent_as_of_join(url: str, month: str) -> pd.DataFrame:
    """The month's set written by hand: profile users, each mart's row of that month, labels."""
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "select p.as_of, p.user_id, p.net_service, p.paperless_billing, "
            "p.plan_stream_movies, p.plan_stream_tv, p.months_active, p.monthly_fee, "
            "u.rebuffer_events_7d, u.unique_devices_30d, u.watch_hours_30d, u.skips_7d, "
            "u.avg_session_mins_7d, f.failed_payments_90d, s.support_tickets_90d, "
            "s.ticket_avg_resolution_hrs_90d, l.churn_label "
            "from marts.subscriptions_profile_snapshots p "
            "left join marts.usage_agg_30d_snapshots u "
            "  on u.user_id = p.user_id and u.as_of = p.as_of "
            "left join marts.payments_agg_90d_snapshots f "
            "  on f.user_id = p.user_id and f.as_of = p.as_of "
            "left join marts.support_agg_90d_snapshots s "
            "  on s.user_id = p.user_id and s.as_of = p.as_of "
            "join marts.churn_labels l on l.user_id = p.user_id and l.as_of = p.as_of "
            "where p.as_of = %s order by p.user_id",
            (month,),
        )
        return pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])


def drop_from_mart(url: str, table: str, month: str, users: int) -> list[str]:
    """Remove `users` users from one mart's month (they then have no value that month)."""
    with psycopg.connect(url) as conn:
        gone = conn.execute(
            f"delete from marts.{table} where (user_id, as_of) in (select user_id, as_of from "
            f"marts.{table} where as_of = %s order by user_id limit %s) returning user_id",
            (month, users),
        ).fetchall()
    return [u for (u,) in gone]


def test_training_set_equals_an_independent_as_of_join(demo_marts):
    """(b) Users missing from a mart in month M get NULLs, never month M-1's values."""
    url, months = demo_marts
    missing = drop_from_mart(url, "usage_agg_30d_snapshots", months[1], 5)
    training = build(url, months[1])
    expected = independent_as_of_join(url, months[1])
    assert len(training) == len(expected) > 250
    pd.testing.assert_frame_equal(training, expected, check_dtype=False, check_exact=True)
    assert training.set_index("user_id").loc[missing, "watch_hours_30d"].isna().all()


@pytest.mark.parametrize("service", [FEATURE_SERVICE, "churn_v2"])
def test_sql_path_equals_feast_get_historical_features(demo_marts, service):
    url, months = demo_marts
    drop_from_mart(url, "support_agg_90d_snapshots", months[2], 7)
    drop_from_mart(url, "customer_profile_snapshots", months[2], 3)
    prepare_feature_database(url)
    store = feature_store(url)
    apply_repo(store, FEATURE_REPO_DIR)
    views = service_views(store, service)
    names = feature_names(store, service)
    with psycopg.connect(url) as conn:
        via_feast = historical_features_via_feast(
            store, conn, views, service, date.fromisoformat(months[2])
        )
        via_sql = read_frame(
            conn, point_in_time_query(views), query_params(date.fromisoformat(months[2]))
        )
    via_feast = via_feast[["user_id", *names]].sort_values("user_id").reset_index(drop=True)
    via_sql = via_sql.sort_values("user_id").reset_index(drop=True)
    assert len(via_sql) > 250
    assert via_sql.columns.tolist() == ["user_id", *names]
    pd.testing.assert_frame_equal(
        via_sql.astype(object).where(via_sql.notna(), None),
        via_feast.astype(object).where(via_feast.notna(), None),
        check_dtype=False,
        check_exact=True,
    )


def test_no_leakage_from_months_after_as_of(demo_marts):
    """(a) Canary values dated after AS_OF never appear; M's rows are the same before and
    after month M+1 lands."""
    url, months = demo_marts
    with psycopg.connect(url) as conn:  # month M+1 not landed yet
        conn.execute("delete from marts.usage_agg_30d_snapshots where as_of = %s", (months[2],))
        users = [
            u
            for (u,) in conn.execute(
                "select user_id from marts.usage_agg_30d_snapshots where as_of = %s", (months[1],)
            )
        ]
    before = build(url, months[1])

    with psycopg.connect(url) as conn:  # month M+1 lands, every value a canary
        canaries = pd.DataFrame({"user_id": users, "as_of": months[2]})
        for column in ("watch_hours_30d", "avg_session_mins_7d"):
            canaries[column] = CANARY
        for column in ("unique_devices_30d", "skips_7d", "rebuffer_events_7d"):
            canaries[column] = int(CANARY)
        insert_rows(conn, "usage_agg_30d_snapshots", canaries)
    after = build(url, months[1])

    pd.testing.assert_frame_equal(after, before, check_exact=True)
    assert not after.isin([CANARY, int(CANARY)]).any().any()
    store = feature_store(url)  # month M+1 itself does see them (its labels have not landed)
    with psycopg.connect(url) as conn:
        next_month = read_frame(
            conn,
            point_in_time_query(service_views(store, FEATURE_SERVICE)),
            query_params(date.fromisoformat(months[2])),
        )
    assert next_month["watch_hours_30d"].eq(CANARY).any()


def test_month_without_labels_materializes_empty_with_a_clear_outcome(demo_marts):
    url, months = demo_marts
    resources = {"warehouse": WarehouseResource(database_url=url), "feast": FeastResource()}
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([feast_registry], instance=instance, resources=resources)
    outcomes = {}
    for month in (months[1], months[2]):
        result = dg.materialize(
            [training_set], partition_key=month, instance=instance, resources=resources
        )
        assert result.success
        check = result.get_asset_check_evaluations()[0]
        metadata = result.asset_materializations_for_node("training_set")[0].metadata
        outcomes[month] = (
            metadata[LABELS_LANDED].value,
            metadata["dagster/row_count"].value,
            check.check_name,
            check.passed,
            check.description,
        )
    assert outcomes[months[1]][:4] == (True, outcomes[months[1]][1], LABELS_LANDED_CHECK, True)
    assert outcomes[months[1]][1] > 250
    landed, rows, _, passed, description = outcomes[months[2]]
    assert (landed, rows, passed) == (False, 0, False)
    assert f"labels for {months[2]} have not landed yet" in description
    with psycopg.connect(url) as conn:
        status = training_set_status(conn, date.fromisoformat(months[2]))
        assert (status.labels_landed, status.rows) == (False, 0)
        assert training_set_status(conn, date.fromisoformat(months[1])).labels_landed


def test_feature_assets_load_into_the_definitions_with_their_lineage():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("training_set")).parent_keys}
    assert parents == {
        "feast_registry",
        "churn_labels",
        "subscriptions_profile_snapshots",
        "usage_agg_30d_snapshots",
        "payments_agg_90d_snapshots",
        "support_agg_90d_snapshots",
        "customer_profile_snapshots",
    }
