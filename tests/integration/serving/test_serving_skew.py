"""Training/serving skew from what was served, on the real stack: the API answers from Feast's
online store and logs the features it used; serving_skew (materialized by Dagster) compares
them with the offline point-in-time values of the same users and month."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from streamflow_dagster.defs.monitor_skew import SERVING_SKEW_CHECK, serving_skew
from streamflow_dagster.defs.resources import FeastResource, WarehouseResource
from streamflow_dagster.features.online_read import OnlineReader
from streamflow_dagster.features.specs import online_views
from streamflow_dagster.features.store import feature_store
from tests.integration.serving.api_support import (
    ONLINE_SCHEMA,
    RunningApi,
    Stack,
    build_stack,
    make_service,
    wait_for,
)

pytestmark = pytest.mark.integration

ALTERED_FEATURE, ALTERED_VIEW = "watch_hours_30d", "usage_agg_30d_fv"
ALTERED_VALUE = 12345.5  # far above any month's watch hours
# The table as the first release made it, before the log recorded features.
OLD_DDL = (
    "create table serving.prediction_log (predicted_at timestamptz not null, user_id text not "
    "null, variant text not null, model_alias text not null, model_version integer not null, "
    "churn_probability double precision not null, prediction boolean not null, "
    "features_as_of timestamptz)"
)


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Stack:
    return build_stack(pg_server.url("postgres"), tmp_path_factory.mktemp("skew"))


def measure(stack: Stack) -> tuple[dict, dg.AssetCheckEvaluation]:
    month = stack.months[-1]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [serving_skew],
        partition_key=month,
        resources={
            "warehouse": WarehouseResource(database_url=stack.database_url),
            "feast": FeastResource(),
        },
        instance=instance,
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("serving_skew")
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == SERVING_SKEW_CHECK
    return {k: v.value for k, v in event.metadata.items()}, check


def logged_with_features(stack: Stack, users: list[str]) -> int:
    with psycopg.connect(stack.database_url) as conn:
        migrated = conn.execute(
            "select 1 from information_schema.columns where table_schema = 'serving' "
            "and table_name = 'prediction_log' and column_name = 'features'"
        ).fetchone()
        if migrated is None:  # the log's writer adds it when it first connects
            return 0
        return conn.execute(
            "select count(*) from serving.prediction_log "
            "where user_id = any(%s) and features is not null",
            (users,),
        ).fetchone()[0]


def alter_online_value(stack: Stack, user: str, value: float) -> None:
    """Overwrite one user's online value (as a stale or corrupted online store would hold)."""
    store = feature_store(stack.database_url)
    views = {view.name: view for view in online_views(store)}
    view = views[ALTERED_VIEW]
    key = OnlineReader([view], ONLINE_SCHEMA).entity_key(user)
    with psycopg.connect(stack.database_url) as conn:
        updated = conn.execute(
            psycopg.sql.SQL(
                "update {} set value = %s where entity_key = %s and feature_name = %s"
            ).format(psycopg.sql.Identifier(ONLINE_SCHEMA, view.online_table)),
            (ValueProto(double_val=value).SerializeToString(), key, ALTERED_FEATURE),
        ).rowcount
    assert updated == 1


def test_served_features_match_offline_until_the_online_store_is_altered(stack):
    month = stack.months[-1]
    with psycopg.connect(stack.database_url) as conn:
        # A log table made before the features column, with one prediction in it.
        conn.execute("create schema if not exists serving")
        conn.execute(OLD_DDL)
        conn.execute(
            "insert into serving.prediction_log values "
            "(now(), %s, 'production', 'production', 1, 0.5, false, %s::timestamptz)",
            (stack.online_users[0], month),
        )
    nothing = measure(stack)[1]
    assert nothing.passed and "Nothing to compare" in nothing.description
    assert "1 predictions were logged before the log recorded features" in nothing.description

    honest_users = stack.online_users[:40]
    altered_user = stack.online_users[40]
    with RunningApi(make_service(stack.database_url, stack.tracking_uri)) as api:
        api.wait_ready()
        with api.client() as http:
            assert http.post("/predict", json={"user_ids": honest_users}).status_code == 200
            assert http.get(f"/predict/{honest_users[0]}").status_code == 200  # a repeat
        wait_for(
            lambda: logged_with_features(stack, honest_users) == 41, 30, "the logged predictions"
        )
        honest, check = measure(stack)
        assert check.passed, check.description
        assert honest["served_users"] == 40 and honest["served_rows"] == 40  # repeat: one row
        assert honest["features_compared"] == 14 and honest["differing_values"] == 0
        assert check.metadata["rows_without_features"].value == 1  # the migrated table's row

        alter_online_value(stack, altered_user, ALTERED_VALUE)
        with api.client() as http:
            answer = http.get(f"/predict/{altered_user}").json()
        assert answer["features_used"][ALTERED_FEATURE] == ALTERED_VALUE
        wait_for(lambda: logged_with_features(stack, [altered_user]) == 1, 30, "the altered row")

    skewed, check = measure(stack)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{ALTERED_FEATURE} (1 of 41 served values" in check.description
    assert f"user {altered_user} served {ALTERED_VALUE!r}" in check.description
    assert check.metadata["differing_values"].value == {ALTERED_FEATURE: 1}
    assert skewed["features_skewed"] == 1 and ALTERED_FEATURE in skewed["per_feature"]
