"""Every job of the code location, and its name: what one run materializes or does.

The CLI, the landing sensor, the freshness schedule and the tests name jobs by these
constants; `definitions.py` registers the jobs defined here.
"""

import dagster as dg

from ..alerts.freshness import Overdue, overdue_alert
from .docs import dbt_docs
from .features import feast_registry
from .models import churn_scores
from .monitor_skew import serving_skew
from .monitors import feature_drift
from .resources import AlertsResource, WarehouseResource

MONTHLY_JOB = "streamflow_monthly"
LABELS_JOB = "streamflow_labels"
SETUP_JOB = "streamflow_setup"
DOCS_JOB = "streamflow_docs"
FRESHNESS_JOB = "landing_freshness_alert"
SERVING_SKEW_JOB = "streamflow_serving_skew"

# Assets that are not per month: applied once, before months that need them.
SETUP_ASSETS = [feast_registry]
# The dbt docs: re-generated when the dbt project changes, never paid for by a month run.
DOCS_ASSETS = [dbt_docs]

# Serving skew is measured once the API has answered from a month's online features, so after
# the month's run, never inside it (defs/monitor_skew.py).
AFTER_SERVING_ASSETS = [serving_skew]

MONTH_ASSETS = dg.AssetSelection.all() - dg.AssetSelection.assets(
    *SETUP_ASSETS, *DOCS_ASSETS, *AFTER_SERVING_ASSETS
)
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
serving_skew_job = dg.define_asset_job(
    SERVING_SKEW_JOB,
    selection=dg.AssetSelection.assets(*AFTER_SERVING_ASSETS),
    description="A month's training/serving skew, from what the API answered with "
    "(started daily by the serving_skew schedule for the month served online).",
)
docs_job = dg.define_asset_job(
    DOCS_JOB,
    selection=dg.AssetSelection.assets(*DOCS_ASSETS),
    description="The dbt docs with the live catalog, served by `streamflow docs`.",
)


# -- the freshness alert (an op job: it materializes nothing; schedules.py starts it) ----
class OverdueMonthConfig(dg.Config):
    month: str
    deadline: str
    newest_landed: str
    days_late: int
    missing_months: int
    landing_dir: str


@dg.op(description="Records the overdue month as an alert in ops.alerts and sends it.")
def alert_overdue_month(
    context: dg.OpExecutionContext,
    config: OverdueMonthConfig,
    warehouse: WarehouseResource,
    alerts: AlertsResource,
) -> None:
    overdue = Overdue(
        month=config.month,
        deadline=config.deadline,
        newest_landed=config.newest_landed,
        days_late=config.days_late,
        missing_months=config.missing_months,
    )
    alert = overdue_alert(overdue, config.landing_dir)
    new, sent, failed = alerts.publish(warehouse, [alert], context.log)
    context.log.info(
        f"{len(new)} new alert(s) for {config.month}; deliveries: {sent} sent, {failed} failed"
    )


@dg.job(
    name=FRESHNESS_JOB,
    description="Alerts that the month which should have landed by now is missing.",
)
def freshness_alert_job():
    alert_overdue_month()


JOBS = [setup_job, monthly_job, labels_job, docs_job, freshness_alert_job, serving_skew_job]
