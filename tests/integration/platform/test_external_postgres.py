"""The whole graph and the API on a PostgreSQL server installed separately (issue 14, item 5).

Debian's `postgresql` in a fresh cluster of its own (tests/servers_postgres.py), reached only
through STREAMFLOW_DATABASE_URL as an ordinary password role, as a managed server would be.
Demo months go through `streamflow run` (the Dagster deployment as real processes), then
`streamflow serve` answers /predict. Everything the platform stores in PostgreSQL must be on
that server (warehouse marts, Feast, MLflow's registry, Dagster's runs) and the embedded
server must never have been started under STREAMFLOW_HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from streamflow_dagster.features.schema import FEATURES_SCHEMA
from streamflow_dagster.features.training_table import TRAINING_SET_TABLE
from streamflow_dagster.platform.instance import DAGSTER_DB
from streamflow_dagster.platform.settings import MLFLOW_DB, WAREHOUSE_DB
from tests.servers import free_port, wait_for_port
from tests.servers_postgres import DebianPostgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
MONTHS = ["2024-01-31", "2024-02-29"]
USERS, SEED = 2000, 14


def streamflow(env: dict, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STREAMFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def external():
    server = DebianPostgres(role="streamflow", database=WAREHOUSE_DB).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cli_env(external, server_home):
    home = server_home("external-pg")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "DAGSTER_HOME")
        and not k.startswith(("STREAMFLOW_PG_", "STREAMFLOW_SERVE_"))
    }
    env["STREAMFLOW_HOME"] = str(home)
    env["STREAMFLOW_DATABASE_URL"] = external.url
    yield env
    streamflow(env, "deploy", "stop", timeout=120)


def test_the_graph_and_the_api_on_an_external_server(external, cli_env):
    home = Path(cli_env["STREAMFLOW_HOME"])
    made = streamflow(
        cli_env,
        "demo-data",
        "--users",
        str(USERS),
        "--months",
        str(len(MONTHS)),
        "--seed",
        str(SEED),
    )
    assert made.returncode == 0, made.stdout + made.stderr

    started = time.monotonic()
    run = streamflow(cli_env, "run", "--months", f"{MONTHS[0]}..{MONTHS[-1]}")
    run_seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{MONTHS[0]}..{MONTHS[-1]} dbt_models: done" in run.stdout

    url = streamflow(cli_env, "db", "url")
    assert url.returncode == 0 and url.stdout.strip() == external.url, url.stdout + url.stderr

    # Everything on the external server: the platform made its databases there, as the role.
    assert {WAREHOUSE_DB, DAGSTER_DB, MLFLOW_DB} <= external.databases()
    with psycopg.connect(external.url) as conn:
        marts = {
            name
            for (name,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            )
        }
        training_rows = conn.execute(
            sql.SQL("select count(*) from {}").format(
                sql.Identifier(FEATURES_SCHEMA, TRAINING_SET_TABLE)
            )
        ).fetchone()[0]
        scored = dict(
            conn.execute("select as_of::text, count(*) from scores.churn_scores group by 1")
        )
        user_id = conn.execute(
            "select user_id from scores.churn_scores where as_of = %s order by user_id limit 1",
            (MONTHS[-1],),
        ).fetchone()[0]
        registry = {
            name
            for (name,) in conn.execute(
                "select feature_view_name from feast_registry.feature_views"
            )
        }
        online = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'feast_online'"
        ).fetchone()[0]
    assert {"usage_agg_30d_snapshots", "churn_labels"} <= marts, marts
    assert training_rows > 0
    assert set(scored) == set(MONTHS) and all(n > 0 for n in scored.values()), scored
    assert registry and online > 0, (registry, online)

    with psycopg.connect(external.url_of(MLFLOW_DB)) as conn:
        production = conn.execute(
            "select name, version from registered_model_aliases where alias = 'production'"
        ).fetchall()
        versions = conn.execute("select count(*) from model_versions").fetchone()[0]
    assert [name for name, _ in production] == ["streamflow_churn"], production
    assert versions >= 1

    with psycopg.connect(external.url_of(DAGSTER_DB)) as conn:
        runs = conn.execute("select status from runs").fetchall()
    assert runs and {status for (status,) in runs} == {"SUCCESS"}, runs

    port = free_port()
    serve_started = time.monotonic()
    api = subprocess.Popen(
        [STREAMFLOW, "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        try:
            wait_for_port(port, timeout_s=300)
        except TimeoutError:
            api.terminate()
            pytest.fail(f"the API did not open its port: {api.communicate(timeout=60)[1]}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            ready = http.get("/ready")
            predicted = http.get(f"/predict/{user_id}")
        serve_seconds = time.monotonic() - serve_started
    finally:
        api.terminate()
        api.wait(timeout=60)
    assert ready.status_code == 200, ready.text
    assert predicted.status_code == 200, predicted.text
    answer = predicted.json()
    assert answer["as_of"] == MONTHS[-1]
    assert answer["model_version"] == int(production[0][1])
    assert 0.0 <= answer["churn_probability"] <= 1.0

    with psycopg.connect(external.superuser_url()) as conn:
        sizes = dict(
            conn.execute(
                "select datname, pg_database_size(datname) / 1048576 from pg_database"
                " where datname = any(%s)",
                ([WAREHOUSE_DB, DAGSTER_DB, MLFLOW_DB, "postgres"],),
            ).fetchall()
        )

    # dagster.yaml names the variable holding the storage URL, never the password.
    dagster_yaml = (home / "dagster" / "dagster.yaml").read_text()
    assert "STREAMFLOW_DAGSTER_STORAGE_URL" in dagster_yaml
    assert external.password not in dagster_yaml

    # The embedded server was never started: no cluster, no server state under the home.
    assert not (home / "postgres").exists(), list((home / "postgres").iterdir())
    print(
        f"\nexternal PostgreSQL {external.bin.parent.name}: {len(MONTHS)} months of {USERS} "
        f"users through `streamflow run` in {run_seconds:.0f} s; scored {scored}; `streamflow "
        f"serve` answered /predict {serve_seconds:.0f} s after its start; database sizes MB "
        f"(empty database: postgres) {sizes}"
    )
