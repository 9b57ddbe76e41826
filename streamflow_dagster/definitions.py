"""The StreamFlow code location: every asset, check, resource and job in one Definitions."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from .assets.dbt import DBT_EXECUTABLE, DBT_PROJECT, dbt_models
from .assets.features import FEATURE_ASSETS, FeastResource, feast_registry
from .assets.landing import landing_ingestion
from .assets.models import MODEL_ASSETS, model_resources
from .assets.monitors import MONITOR_ASSETS
from .resources import LandingResource, WarehouseResource
from .sensors import MONTHLY_JOB, build_landing_sensor
from .settings import load_settings


def build_resources() -> dict:
    """The one place that picks resources: the embedded default or the configured servers."""
    settings = load_settings()
    database_url = dg.EnvVar("STREAMFLOW_DATABASE_URL") if settings.database_url else None
    return {
        "warehouse": WarehouseResource(database_url=database_url, home=str(settings.home)),
        "landing": LandingResource(path=str(settings.landing_dir)),
        "dbt": DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE),
        "feast": FeastResource(),
        **model_resources(),
    }


# Assets that are not per month: applied once, before months that need them.
SETUP_ASSETS = [feast_registry]
SETUP_JOB = "streamflow_setup"

monthly_job = dg.define_asset_job(
    MONTHLY_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*SETUP_ASSETS),
    description="One month (AS_OF) through the whole graph: landing files, marts, online "
    "features, training set, churn model, promotion and batch scores.",
)
setup_job = dg.define_asset_job(
    SETUP_JOB,
    selection=dg.AssetSelection.assets(*SETUP_ASSETS),
    description="What every month needs first: the Feast definitions applied.",
)


def build_definitions(**resource_overrides) -> dg.Definitions:
    """The code location; tests override resources (e.g. a fresh database) by key."""
    resources = {**build_resources(), **resource_overrides}
    return dg.Definitions(
        assets=[landing_ingestion, dbt_models, *FEATURE_ASSETS, *MODEL_ASSETS, *MONITOR_ASSETS],
        jobs=[setup_job, monthly_job],
        sensors=[build_landing_sensor(resources["landing"].folder)],
        resources=resources,
    )


defs = build_definitions()
