"""A range of months in ONE run (one dbt invocation) builds exactly what one run per month
builds: byte-identical marts; and a month of the range that has not landed stops the run
before anything is loaded, naming it."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.cli.runner import partition_tags
from streamflow_dagster.cli.summary import MART_TABLES
from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.dbt import dbt_models
from streamflow_dagster.defs.landing import landing_ingestion
from streamflow_dagster.defs.resources import LandingResource, WarehouseResource
from streamflow_dagster.landing.demo_data import generate_landing
from tests.integration.helpers import table_checksum

pytestmark = pytest.mark.integration

MONTHS = ["2024-01-31", "2024-02-29", "2024-03-31"]


def build(definitions: dg.Definitions, instance, months: list[str]) -> dg.ExecuteInProcessResult:
    """landing_ingestion + dbt_models over `months` (consecutive) in one in-process run."""
    job = definitions.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={
            *landing_ingestion.keys,
            *dbt_models.keys,
        }
    )
    return job.execute_in_process(
        instance=instance, tags=partition_tags(months), raise_on_error=False
    )


def marts(url: str) -> dict[str, dict[str, tuple[int, str]]]:
    with psycopg.connect(url) as conn:
        return {
            month: {
                m: table_checksum(conn, "marts", m, "as_of = %s", (month,)) for m in MART_TABLES
            }
            for month in MONTHS
        }


def drop_built(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists marts cascade")
        conn.execute("drop schema if exists staging cascade")
        conn.execute("drop schema if exists raw cascade")


def test_a_range_in_one_run_gives_the_marts_of_one_run_per_month(tmp_path, database_url):
    landing = tmp_path / "landing"
    generate_landing(landing, users=400, months=len(MONTHS), seed=5)
    definitions = build_definitions(
        warehouse=WarehouseResource(database_url=database_url),
        landing=LandingResource(path=str(landing)),
    )
    with dg.instance_for_test() as instance:
        ranged = build(definitions, instance, MONTHS)
        assert ranged.success
        dbt_steps = [e for e in ranged.all_events if e.event_type == dg.DagsterEventType.STEP_START]
        assert len(dbt_steps) == 2  # one step per asset for the whole range
        materialized = instance.get_materialized_partitions(dg.AssetKey("usage_agg_30d_snapshots"))
        assert materialized == set(MONTHS)
        by_range = marts(database_url)

        drop_built(database_url)
        for month in MONTHS:
            assert build(definitions, instance, [month]).success
        by_month = marts(database_url)

    for month in MONTHS:  # an empty comparison would pass whatever was built
        assert all(count > 0 for count, _ in by_month[month].values() if count is not None)
        assert by_month[month]["usage_agg_30d_snapshots"][0] > 300
    assert by_range == by_month


def test_a_range_with_a_month_that_has_not_landed_fails_naming_it(tmp_path, database_url):
    landing = tmp_path / "landing"
    generate_landing(landing, users=50, months=1, seed=5)  # January only
    definitions = build_definitions(
        warehouse=WarehouseResource(database_url=database_url),
        landing=LandingResource(path=str(landing)),
    )
    with dg.instance_for_test() as instance:
        result = build(definitions, instance, MONTHS[:2])
        assert not result.success
        (failure,) = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        message = failure.step_failure_data.user_failure_data.description
        assert "have not landed: 2024-02-29" in message
        assert str(landing / "2024-02-29") in message
        assert instance.get_materialized_partitions(dg.AssetKey("raw_users")) == set()
    with psycopg.connect(database_url) as conn:  # nothing loaded, not even January
        loaded = conn.execute("select to_regclass('raw.users')").fetchone()[0]
        if loaded is not None:
            assert conn.execute("select count(*) from raw.users").fetchone()[0] == 0


def test_a_ranges_checks_count_for_each_month_it_materialized(tmp_path, database_url):
    """Each month's check evaluation targets that month's materialization, so the check's
    partitions say passed / failed per month (not 'missing' for the months that passed),
    in a range stopped by one month's blocking check and in a range that passed."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    from streamflow_dagster.landing.completeness import write_manifest

    landing = tmp_path / "landing"
    generate_landing(landing, users=60, months=len(MONTHS), seed=5)
    subscriptions = landing / MONTHS[-1] / "subscriptions.csv"
    lines = subscriptions.read_text().splitlines()
    header = lines[0].split(",")
    fee = header.index("monthly_fee")
    for i in range(1, len(lines), 5):  # one row in five with a negative fee: reject_rate fails
        cells = lines[i].split(",")
        cells[fee] = f"-{cells[fee]}"
        lines[i] = ",".join(cells)
    subscriptions.write_text("\n".join(lines) + "\n")
    write_manifest(landing / MONTHS[-1])
    job = (
        build_definitions(
            warehouse=WarehouseResource(database_url=database_url),
            landing=LandingResource(path=str(landing)),
        )
        .resolve_implicit_global_asset_job_def()
        .get_subset(asset_selection=set(landing_ingestion.keys))
    )
    check = dg.AssetCheckKey(dg.AssetKey("raw_subscriptions"), "reject_rate")

    def statuses(instance) -> dict[str, tuple[Status, bool]]:
        infos = instance.event_log_storage.get_asset_check_partition_info([check])
        return {i.partition_key: (i.latest_execution_status, i.is_current) for i in infos}

    with dg.instance_for_test() as instance:
        stopped = job.execute_in_process(
            instance=instance, tags=partition_tags(MONTHS), raise_on_error=False
        )
        assert not stopped.success
        assert statuses(instance) == {
            MONTHS[0]: (Status.SUCCEEDED, True),
            MONTHS[1]: (Status.SUCCEEDED, True),
            MONTHS[2]: (Status.FAILED, True),
        }
        rerun = job.execute_in_process(instance=instance, tags=partition_tags(MONTHS[:2]))
        assert rerun.success
        assert statuses(instance) == {
            MONTHS[0]: (Status.SUCCEEDED, True),
            MONTHS[1]: (Status.SUCCEEDED, True),
            MONTHS[2]: (Status.FAILED, True),
        }
