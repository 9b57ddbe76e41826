"""The StreamFlow code location: every asset, check, resource and job in one Definitions."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from .defs.dbt import DBT_EXECUTABLE, DBT_PROJECT, dbt_models
from .defs.docs import DOCS_JOB, dbt_docs
from .defs.features import FEATURE_ASSETS, FeastResource, feast_registry
from .defs.landing import landing_ingestion
from .defs.models import MODEL_ASSETS, churn_scores, model_resources
from .defs.monitors import MONITOR_ASSETS, feature_drift
from .defs.resources import LandingResource, WarehouseResource
from .defs.schedules import build_freshness_schedule, freshness_alert_job
from .defs.sensors import (
    LABELS_JOB,
    MONTHLY_JOB,
    AlertsResource,
    alert_sensor,
    build_landing_sensor,
)
from .platform.settings import load_settings


def build_resources() -> dict:
    """The one place that picks resources: the embedded default or the configured servers."""
    settings = load_settings()
    database_url = dg.EnvVar("STREAMFLOW_DATABASE_URL") if settings.database_url else None
    return {
        "warehouse": WarehouseResource(database_url=database_url, home=str(settings.home)),
        "landing": LandingResource(path=str(settings.landing_dir)),
        "dbt": DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE),
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


# Assets that are not per month: applied once, before months that need them.
SETUP_ASSETS = [feast_registry]
SETUP_JOB = "streamflow_setup"
# The dbt docs: re-generated when the dbt project changes, never paid for by a month run.
DOCS_ASSETS = [dbt_docs]

MONTH_ASSETS = dg.AssetSelection.all() - dg.AssetSelection.assets(*SETUP_ASSETS, *DOCS_ASSETS)
monthly_job = dg.define_asset_job(
    MONTHLY_JOB,
    selection=MONTH_ASSETS,
    description="One month (AS_OF) through the whole graph: landing files, marts, online "
    "features, training set, churn model, promotion, batch scores, drift and realized "
    "performance.",
)
# Labels land a month or so after the month's files. Their run rebuilds what needs them
# (labels mart, training set, model, promotion) and evaluates the scores made at the month
# against them; churn_scores is left out so those scores stay the ones made before the
# labels were known (re-scoring with a model trained on the same month would flatter it).
labels_job = dg.define_asset_job(
    LABELS_JOB,
    selection=MONTH_ASSETS - dg.AssetSelection.assets(churn_scores, feature_drift),
    description="A month whose labels landed late: its labels, training set, model, "
    "promotion and the realized performance of the scores made before the labels.",
)
setup_job = dg.define_asset_job(
    SETUP_JOB,
    selection=dg.AssetSelection.assets(*SETUP_ASSETS),
    description="What every month needs first: the Feast definitions applied.",
)
docs_job = dg.define_asset_job(
    DOCS_JOB,
    selection=dg.AssetSelection.assets(*DOCS_ASSETS),
    description="The dbt docs with the live catalog, served by `streamflow docs`.",
)


def build_definitions(**resource_overrides) -> dg.Definitions:
    """The code location; tests override resources (e.g. a fresh database) by key."""
    resources = {**build_resources(), **resource_overrides}
    return dg.Definitions(
        assets=[
            landing_ingestion,
            dbt_models,
            *FEATURE_ASSETS,
            *MODEL_ASSETS,
            *DOCS_ASSETS,
            *MONITOR_ASSETS,
        ],
        jobs=[setup_job, monthly_job, labels_job, docs_job, freshness_alert_job],
        sensors=[
            build_landing_sensor(resources["landing"].folder, [monthly_job, labels_job]),
            alert_sensor,
        ],
        schedules=[build_freshness_schedule(resources["landing"].folder)],
        resources=resources,
    )


defs = build_definitions()
