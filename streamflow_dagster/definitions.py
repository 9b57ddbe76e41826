"""The StreamFlow code location: every asset, check, resource and job in one Definitions."""

from __future__ import annotations

import dagster as dg

from .defs.dbt import DBT_EXECUTABLE, DBT_PROJECT, dbt_models
from .defs.dbt_project import StreamflowDbtCli
from .defs.docs import dbt_docs
from .defs.features import FEATURE_ASSETS
from .defs.health import platform_health, platform_health_sensor
from .defs.jobs import JOBS, labels_job, monthly_job
from .defs.landing import landing_ingestion
from .defs.models import MODEL_ASSETS
from .defs.monitors import MONITOR_ASSETS
from .defs.resources import (
    AlertsResource,
    FeastResource,
    LandingResource,
    WarehouseResource,
    model_resources,
)
from .defs.schedules import build_freshness_schedule, serving_skew_daily
from .defs.sensors import alert_sensor, build_landing_sensor
from .platform.celery import executor_definition
from .platform.settings import load_executor_settings, load_settings


def build_resources() -> dict:
    """The one place that picks resources: the embedded default or the configured servers."""
    settings = load_settings()
    database_url = dg.EnvVar("STREAMFLOW_DATABASE_URL") if settings.database_url else None
    return {
        "warehouse": WarehouseResource(database_url=database_url, home=str(settings.home)),
        "landing": LandingResource(path=str(settings.landing_dir)),
        "dbt": StreamflowDbtCli(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE),
        "feast": FeastResource(),
        "alerts": AlertsResource(
            ui_url=settings.ui_url,
            webhook_url=(
                dg.EnvVar("STREAMFLOW_ALERT_WEBHOOK_URL") if settings.alert_webhook_url else None
            ),
            slack_token=dg.EnvVar("STREAMFLOW_SLACK_TOKEN") if settings.slack_token else None,
            slack_channel=settings.slack_channel,
        ),
        **model_resources(),
    }


def build_definitions(**resource_overrides) -> dg.Definitions:
    """The code location; tests override resources (e.g. a fresh database) by key."""
    resources = {**build_resources(), **resource_overrides}
    return dg.Definitions(
        assets=[
            landing_ingestion,
            dbt_models,
            *FEATURE_ASSETS,
            *MODEL_ASSETS,
            dbt_docs,
            *MONITOR_ASSETS,
            platform_health,
        ],
        jobs=JOBS,
        sensors=[
            build_landing_sensor(resources["landing"].folder, [monthly_job, labels_job]),
            alert_sensor,
            platform_health_sensor,
        ],
        schedules=[build_freshness_schedule(resources["landing"].folder), serving_skew_daily],
        resources=resources,
        # In process by default; STREAMFLOW_EXECUTOR=celery: steps on Celery workers.
        executor=executor_definition(load_executor_settings()),
    )


defs = build_definitions()
