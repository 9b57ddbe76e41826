"""dbt staging views and monthly snapshot marts, as partitioned Dagster assets."""

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ..landing.contract import RAW_SCHEMA
from ..lib.dbt_args import build_args
from ..lib.dbt_profile import rendered_profiles
from .dbt_project import DBT_EXECUTABLE, DBT_PROJECT, prepare_if_dev, require_manifest
from .partitions import AS_OF_PARTITIONS, partition_months
from .ranges import check_outputs, month_evaluation
from .resources import WarehouseResource

__all__ = ["DBT_EXECUTABLE", "DBT_PROJECT", "dbt_models"]

# One dbt build at a time against the warehouse: first builds of an incremental mart and
# concurrent delete+insert of the same tables race otherwise (see the instance's pools).
DBT_POOL = "dbt_warehouse"


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

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        """dbt tests as checks of the month: each result records the partition it tested."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        return dg.AssetCheckSpec(
            spec.name,
            asset=spec.asset_key,
            description=spec.description,
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
            partitions_def=AS_OF_PARTITIONS,
        )


def _resource_props(manifest: Mapping[str, Any], unique_id: str) -> Mapping[str, Any]:
    for section in ("nodes", "sources"):
        if unique_id in manifest.get(section, {}):
            return manifest[section][unique_id]
    raise KeyError(unique_id)


# `dagster dev` re-parses a changed project here (dagster-dbt's development flow); anywhere
# else the manifest was prepared before (see dbt_project.py), and a stale one is an error.
prepare_if_dev(DBT_PROJECT)
require_manifest(DBT_PROJECT)


@contextmanager
def connection_profiles(dbt: DbtCliResource, connection: Mapping[str, str]) -> Iterator[Path]:
    """A private profiles folder for one dbt invocation: the project's profiles.yml with
    `connection` (STREAMFLOW_PG_* values) written in, readable by this user only, removed
    afterwards. dbt gets the run's warehouse this way, not through this process's environment.
    """
    source = Path(dbt.profiles_dir or dbt.project_dir) / "profiles.yml"
    profiles = rendered_profiles(yaml.safe_load(source.read_text()), connection)
    with tempfile.TemporaryDirectory(prefix="streamflow-dbt-profile-") as folder:  # mode 0700
        fd = os.open(Path(folder) / "profiles.yml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(profiles, out, sort_keys=False)
        yield Path(folder)


def with_profiles_dir(dbt: DbtCliResource, profiles_dir: Path) -> DbtCliResource:
    """The same dbt resource (the same class), reading its profile from `profiles_dir`."""
    return type(dbt)(
        project_dir=dbt.project_dir,
        global_config_flags=dbt.global_config_flags,
        profiles_dir=str(profiles_dir),
        profile=dbt.profile,
        target=dbt.target,
        dbt_executable=dbt.dbt_executable,
        state_path=dbt.state_path,
    )


@dbt_assets(
    manifest=DBT_PROJECT.manifest_path,
    project=DBT_PROJECT,
    name="dbt_models",
    partitions_def=AS_OF_PARTITIONS,
    dagster_dbt_translator=StreamflowTranslator(),
    pool=DBT_POOL,
    # A range of months is one run and ONE dbt invocation (one start-up, one parse, each test
    # once over the range); the marts are the same as one build per month (tests/dbt).
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """dbt build of the months: staging views, incremental marts and their tests."""
    months = partition_months(context)
    context.log.info(f"dbt build of {months[0]}..{months[-1]} ({len(months)} month(s))")
    with connection_profiles(dbt, warehouse.libpq_env()) as profiles_dir:
        run_dbt = with_profiles_dir(dbt, profiles_dir)
        events = run_dbt.cli(build_args(months[0], months[-1]), context=context).stream()
        yield from events if len(months) == 1 else checks_per_month(context, events, months)


def checks_per_month(context: dg.AssetExecutionContext, events, months: list[str]):
    """dbt's events over a range, each test's result recorded for every month of the range:
    one dbt invocation tests the range's rows together, so its outcome is each month's."""
    blocking = {spec.key for spec in context.assets_def.check_specs if spec.blocking}
    tested = set()
    for event in events:
        if not isinstance(event, dg.AssetCheckResult):
            yield event
            continue
        asset = dg.AssetKey.from_coercible(event.asset_key)
        tested.add(dg.AssetCheckKey(asset, event.check_name))
        span = f"dbt test over {months[0]}..{months[-1]}"
        described = event._replace(description=f"{span}: {event.description or ''}".rstrip(": "))
        for as_of in months:
            yield month_evaluation(asset, described, as_of, blocking)
    yield from check_outputs(context, tested)
