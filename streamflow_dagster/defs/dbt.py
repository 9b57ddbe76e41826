"""dbt staging views and monthly snapshot marts, as partitioned Dagster assets."""

import fcntl
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from ..landing.contract import RAW_SCHEMA
from ..lib.dbt_args import build_args
from ..platform.settings import DBT_PROJECT_DIR
from .partitions import AS_OF_PARTITIONS, validate_as_of
from .resources import WarehouseResource

# One dbt build at a time against the warehouse: first builds of an incremental mart and
# concurrent delete+insert of the same tables race otherwise (see the instance's pools).
DBT_POOL = "dbt_warehouse"

# The dbt installed beside this Python: a venv's bin folder need not be on PATH.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

# dbt parse renders profiles.yml, which reads these; parsing never connects, so a
# placeholder is enough when no run has set the real values yet.
_PARSE_ENV_DEFAULTS = {
    "STREAMFLOW_PG_HOST": "127.0.0.1",
    "STREAMFLOW_PG_PORT": "5432",
    "STREAMFLOW_PG_USER": "postgres",
    "STREAMFLOW_PG_PASSWORD": "",
    "STREAMFLOW_PG_DBNAME": "streamflow",
}


def _manifest_is_fresh(project: DbtProject) -> bool:
    manifest = project.manifest_path
    if not manifest.exists():
        return False
    newest = max(
        p.stat().st_mtime
        for p in project.project_dir.rglob("*")
        if p.suffix in {".sql", ".yml", ".md"} and not {"target", "logs"} & set(p.parts)
    )
    return manifest.stat().st_mtime >= newest


def ensure_manifest(project: DbtProject = DBT_PROJECT) -> None:
    """Parse the dbt project when the manifest is missing or older than a project file.

    Every Dagster process imports this module (code server, runs, the CLI); a file lock
    makes one of them parse while the others wait and then reuse its manifest.
    """
    if _manifest_is_fresh(project):
        return
    target = project.manifest_path.parent  # DbtProject.target_path is relative
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _manifest_is_fresh(project):
            return
        env = {**_PARSE_ENV_DEFAULTS, **os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        subprocess.run(
            [
                DBT_EXECUTABLE,
                "parse",
                "--quiet",
                "--project-dir",
                str(project.project_dir),
                "--profiles-dir",
                str(project.profiles_dir),
                "--target-path",
                str(target),
            ],
            env=env,
            check=True,
        )


class StreamflowTranslator(DagsterDbtTranslator):
    """dbt sources in schema raw are the raw_<table> ingestion assets; models keep their name."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = _resource_props(manifest, unique_id)
        if props["resource_type"] == "source" and props.get("source_name") == RAW_SCHEMA:
            return spec.replace_attributes(key=dg.AssetKey(f"raw_{props['name']}"))
        if props["resource_type"] == "model":
            layer = "marts" if "marts" in props.get("fqn", []) else "staging"
            return spec.replace_attributes(key=dg.AssetKey(props["name"]), group_name=layer)
        return spec


def _resource_props(manifest: Mapping[str, Any], unique_id: str) -> Mapping[str, Any]:
    for section in ("nodes", "sources"):
        if unique_id in manifest.get(section, {}):
            return manifest[section][unique_id]
    raise KeyError(unique_id)


ensure_manifest()


@dbt_assets(
    manifest=DBT_PROJECT.manifest_path,
    project=DBT_PROJECT,
    name="dbt_models",
    partitions_def=AS_OF_PARTITIONS,
    dagster_dbt_translator=StreamflowTranslator(),
    pool=DBT_POOL,
)
def dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """dbt build of the month: staging views, incremental marts and their tests."""
    as_of = context.partition_key
    validate_as_of(as_of)
    os.environ.update(warehouse.libpq_env())  # profiles.yml reads them via env_var()
    yield from dbt.cli(build_args(as_of), context=context).stream()
