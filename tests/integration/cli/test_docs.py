"""dbt docs: the dbt_docs asset against the live warehouse, its code version, and serving."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request

import dagster as dg
import pytest
from click.testing import CliRunner

from streamflow_dagster.cli.main import docs_server, main
from streamflow_dagster.definitions import defs
from streamflow_dagster.defs.dbt import dbt_models
from streamflow_dagster.defs.docs import DOCS_PORT, DOCS_URL, dbt_docs, dbt_project_hash
from streamflow_dagster.defs.jobs import DOCS_JOB, MONTHLY_JOB
from streamflow_dagster.defs.landing import landing_ingestion
from streamflow_dagster.defs.resources import LandingResource, WarehouseResource
from streamflow_dagster.platform.settings import DBT_PROJECT_DIR
from tests.integration.helpers import write_month
from tests.integration.landing.test_ingestion import clean_month

pytestmark = pytest.mark.integration

JAN = "2024-01-31"


def test_dbt_docs_asset_writes_the_site_with_the_live_catalog(tmp_path, database_url):
    write_month(tmp_path / "landing", JAN, clean_month())
    instance = dg.DagsterInstance.ephemeral()
    warehouse = WarehouseResource(database_url=database_url)
    landing = dg.materialize(
        [landing_ingestion],
        partition_key=JAN,
        instance=instance,
        resources={
            "warehouse": warehouse,
            "landing": LandingResource(path=str(tmp_path / "landing")),
        },
    )
    assert landing.success  # raw.* now exist: the catalog has live tables to describe

    out = tmp_path / "dbt-docs"
    result = dg.materialize(
        [dbt_docs],
        instance=instance,
        resources={"warehouse": warehouse},
        run_config=dg.RunConfig(ops={"dbt_docs": {"config": {"output_dir": str(out)}}}),
    )
    assert result.success
    for name in ("index.html", "manifest.json", "catalog.json"):
        assert (out / name).is_file()
    catalog = json.loads((out / "catalog.json").read_text())
    assert "source.streamflow.raw.users" in catalog["sources"]
    manifest = json.loads((out / "manifest.json").read_text())
    mart = manifest["nodes"]["model.streamflow.subscriptions_profile_snapshots"]
    assert mart["description"] and mart["columns"]["monthly_fee"]["description"]

    metadata = result.asset_materializations_for_node("dbt_docs")[0].metadata
    assert metadata["path"] == dg.MetadataValue.path(str(out))
    assert metadata["url"] == dg.MetadataValue.url(DOCS_URL) and DOCS_URL.endswith(str(DOCS_PORT))
    assert metadata["dbt_project_hash"].value == dbt_project_hash()


def test_docs_are_re_materialized_when_the_dbt_project_changes(tmp_path):
    assert dbt_docs.code_versions_by_key[dg.AssetKey("dbt_docs")] == dbt_project_hash()
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    before = dbt_project_hash(project)
    (project / "target").mkdir()
    (project / "target" / "manifest.json").write_text("{}")  # build output: not the project
    assert dbt_project_hash(project) == before
    schema = next(project.rglob("*.yml"))
    schema.write_text(schema.read_text() + "\n# a changed description\n")
    assert dbt_project_hash(project) != before


def test_docs_run_in_their_own_job_not_in_month_runs():
    month = defs.resolve_job_def(MONTHLY_JOB).asset_layer.executable_asset_keys
    docs = defs.resolve_job_def(DOCS_JOB).asset_layer.executable_asset_keys
    assert dg.AssetKey("dbt_docs") not in month and docs == {dg.AssetKey("dbt_docs")}


def test_dbt_assets_show_descriptions_and_column_docs_in_the_ui():
    specs = {spec.key.to_user_string(): spec for spec in dbt_models.specs}
    for name in ("subscriptions_profile_snapshots", "stg_users"):
        spec = specs[name]
        assert spec.description
        columns = {c.name: c for c in spec.metadata["dagster/column_schema"].columns}
        assert columns["user_id"].description and "as_of" in columns
    mart_columns = specs["subscriptions_profile_snapshots"].metadata["dagster/column_schema"]
    assert {c.name: c.type for c in mart_columns.columns}["monthly_fee"] == "double precision"


def test_docs_serves_a_generated_folder(tmp_path):
    (tmp_path / "index.html").write_text("<html>dbt docs</html>")
    server = docs_server(tmp_path, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/index.html"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"<html>dbt docs</html>"
    finally:
        server.shutdown()
        server.server_close()


def test_docs_without_generated_docs_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["docs", "--no-generate"])
    assert result.exit_code != 0
    assert "No dbt docs in" in result.output and "dbt_docs asset" in result.output
    help_text = CliRunner().invoke(main, ["docs", "--help"]).output
    assert "--no-generate" in help_text and str(DOCS_PORT) in help_text
