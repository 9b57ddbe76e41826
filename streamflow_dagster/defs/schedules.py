"""Daily schedules: a month that should have landed and has not -> one alert; the skew of
what the API served from the month online -> a serving_skew run."""

from dataclasses import asdict
from pathlib import Path

import dagster as dg

from ..alerts.freshness import FRESHNESS_GRACE_DAYS, overdue_month
from ..landing.months import complete_months
from .jobs import OverdueMonthConfig, freshness_alert_job, serving_skew_job

FRESHNESS_SCHEDULE = "landing_freshness"
# Every morning (UTC), before people start their day: a late month is news by then.
FRESHNESS_CRON = "0 7 * * *"
SERVING_SKEW_SCHEDULE = "serving_skew_daily"
# Every night (UTC): a day of answers is enough to compare, and the API is at its quietest.
SERVING_SKEW_CRON = "30 2 * * *"
# The asset whose newest materialized partition is the month the API serves.
ONLINE_ASSET = dg.AssetKey("online_features")


def build_freshness_schedule(landing_dir: Path) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=FRESHNESS_SCHEDULE,
        cron_schedule=FRESHNESS_CRON,
        execution_timezone="UTC",
        job=freshness_alert_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Daily: alerts when the last month (month end + {FRESHNESS_GRACE_DAYS} "
        f"days) has not landed complete in {landing_dir}.",
    )
    def landing_freshness(context: dg.ScheduleEvaluationContext):
        """Overdue month -> one alert run (run key per month, so one alert per month)."""
        today = context.scheduled_execution_time.date()
        overdue = overdue_month(today, complete_months(landing_dir))
        if overdue is None:
            return dg.SkipReason(f"landing in {landing_dir} is on time for {today}")
        config = OverdueMonthConfig(landing_dir=str(landing_dir), **asdict(overdue))
        return dg.RunRequest(
            run_key=f"overdue-{overdue.month}",
            run_config=dg.RunConfig(ops={"alert_overdue_month": config}),
            tags={"streamflow/overdue_month": overdue.month},
        )

    return landing_freshness


@dg.schedule(
    name=SERVING_SKEW_SCHEDULE,
    cron_schedule=SERVING_SKEW_CRON,
    execution_timezone="UTC",
    job=serving_skew_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: serving_skew for the month the API serves (online_features' newest "
    "materialized month), so the served features are compared with the offline ones every day "
    "the deployment runs.",
)
def serving_skew_daily(context: dg.ScheduleEvaluationContext):
    """The served month's skew, once a day (run key per month and day)."""
    month = served_month(context.instance)
    if month is None:
        return dg.SkipReason("no month online yet: online_features has never been materialized")
    day = context.scheduled_execution_time.date()
    return dg.RunRequest(
        run_key=f"serving-skew-{month}-{day}", partition_key=month, tags={"streamflow/as_of": month}
    )


def served_month(instance: dg.DagsterInstance) -> str | None:
    """The newest month online_features was materialized for: what the API serves."""
    event = instance.get_latest_materialization_event(ONLINE_ASSET)
    if event is None or event.asset_materialization is None:
        return None
    return event.asset_materialization.partition
