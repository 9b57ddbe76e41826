"""The daily freshness schedule: a month that should have landed and has not -> one alert."""

from dataclasses import asdict
from pathlib import Path

import dagster as dg

from ..alerts.freshness import FRESHNESS_GRACE_DAYS, Overdue, overdue_alert, overdue_month
from .resources import WarehouseResource
from .sensors import AlertsResource, complete_months

FRESHNESS_JOB = "landing_freshness_alert"
FRESHNESS_SCHEDULE = "landing_freshness"
# Every morning (UTC), before people start their day: a late month is news by then.
FRESHNESS_CRON = "0 7 * * *"


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
