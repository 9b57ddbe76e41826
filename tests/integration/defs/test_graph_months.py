"""Landing files -> raw -> dbt marts for whole months, on the real PostgreSQL and real dbt."""

from __future__ import annotations

import os
import subprocess

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.cli.summary import MART_TABLES
from streamflow_dagster.definitions import build_definitions, defs
from streamflow_dagster.defs.dbt import DBT_EXECUTABLE, DBT_PROJECT
from streamflow_dagster.defs.jobs import MONTHLY_JOB, SETUP_JOB
from streamflow_dagster.defs.resources import LandingResource, WarehouseResource
from streamflow_dagster.landing.completeness import write_manifest
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.lib.dbt_args import unit_test_invocations
from tests.integration.helpers import table_checksum
from tests.integration.inprocess import run_months, run_setup

pytestmark = pytest.mark.integration

MONTHS = ["2024-01-31", "2024-02-29"]


@pytest.fixture
def graph(tmp_path, database_url):
    """The Definitions with their resources pointed at a fresh database and landing folder."""
    landing = tmp_path / "landing"
    # Enough users for the month's model to clear its AUC floor: the job runs the whole graph.
    generate_landing(landing, users=2000, months=2, seed=7)
    definitions = build_definitions(
        warehouse=WarehouseResource(database_url=database_url),
        landing=LandingResource(path=str(landing)),
    )
    return definitions, database_url


def mart_checksums(url: str, as_of: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return {m: table_checksum(conn, "marts", m, "as_of = %s", (as_of,)) for m in MART_TABLES}


def test_definitions_load_with_lineage_from_raw_to_marts():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_users", "raw_labels", "stg_users", *MART_TABLES} <= keys
    upstream = {
        k.to_user_string()
        for k in graph.get(dg.AssetKey("subscriptions_profile_snapshots")).parent_keys
    }
    assert upstream == {"stg_subscriptions", "stg_users"}
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("stg_users")).parent_keys} == {
        "raw_users"
    }
    # The README's claim: every asset is per month except these four.
    unpartitioned = {
        k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_partitioned
    }
    assert unpartitioned == {"feast_registry", "production_model", "dbt_docs", "platform_health"}


def test_two_months_end_to_end_and_idempotent_rerun(graph):
    definitions, url = graph
    with dg.instance_for_test() as instance:
        assert run_setup(definitions, SETUP_JOB, instance).success
        runs = run_months(definitions, MONTHLY_JOB, MONTHS, instance, echo=lambda _: None)
        assert all(r.success for r in runs), [r.failures for r in runs]
        assert not any(r.failed_checks for r in runs), [r.failed_checks for r in runs]
        first = {m: mart_checksums(url, m) for m in MONTHS}
        with psycopg.connect(url) as conn:
            raw_users = dict(
                conn.execute(
                    "select as_of::text, count(*) from raw.subscriptions group by 1"
                ).fetchall()
            )
        for month in MONTHS:
            assert first[month]["subscriptions_profile_snapshots"][0] == raw_users[month]
            assert all(count > 0 for count, _ in first[month].values())

        rerun = run_months(definitions, MONTHLY_JOB, MONTHS[:1], instance, echo=lambda _: None)
        assert rerun[0].success
        assert {m: mart_checksums(url, m) for m in MONTHS} == first


def test_dbt_unit_tests_pass(database_url):
    """The YAML unit tests of the dbt project (SQL logic), run by real dbt on PostgreSQL."""
    from streamflow_dagster.landing.load import ensure_raw_schema
    from streamflow_dagster.platform.db import connection_env

    with psycopg.connect(database_url) as conn:
        ensure_raw_schema(conn)  # unit tests compile against the real source relations
    env = {**os.environ, **connection_env(database_url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    project = str(DBT_PROJECT.project_dir)
    for args in unit_test_invocations():
        done = subprocess.run(
            [
                DBT_EXECUTABLE,
                *args,
                "--project-dir",
                project,
                "--profiles-dir",
                project,
                "--target-path",
                str(DBT_PROJECT.manifest_path.parent / "pytest-unit"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-3000:]
    # All five ran and passed: churn_labels' and subscriptions_profile's three, and
    # customer_profile's two (churn_v2's derived features). Staging no longer rewrites
    # categories (ingestion stores the canonical spelling, landing/contract.py), so its two
    # cleaning tests went with the macro.
    assert "PASS=5 " in done.stdout


def test_high_reject_rate_stops_the_month_before_the_marts(graph, tmp_path):
    """A blocking reject_rate failure keeps dbt from touching the month's marts."""
    definitions, url = graph
    month = MONTHS[0]
    with dg.instance_for_test() as instance:
        assert run_setup(definitions, SETUP_JOB, instance).success
        assert run_months(definitions, MONTHLY_JOB, [month], instance, echo=lambda _: None)[
            0
        ].success
        before = mart_checksums(url, month)

        subscriptions = tmp_path / "landing" / month / "subscriptions.csv"
        lines = subscriptions.read_text().splitlines()
        broken = [lines[0]] + [line.replace(",DSL,", ",satellite,") for line in lines[1:]]
        assert broken != lines  # the month really has DSL rows to break
        subscriptions.write_text("\n".join(broken) + "\n")
        write_manifest(subscriptions.parent)  # a complete export, with bad content

        run = run_months(definitions, MONTHLY_JOB, [month], instance, echo=lambda _: None)[0]
        assert "raw_subscriptions / reject_rate (ERROR)" in run.failed_checks
        dbt_steps = [
            e.dagster_event.event_type_value
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.step_key == "dbt_models"
        ]
        assert "STEP_START" not in dbt_steps  # blocked before dbt ran at all
        assert mart_checksums(url, month) == before
