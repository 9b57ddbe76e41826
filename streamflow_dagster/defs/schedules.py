"""The daily freshness schedule: a month that should have landed and has not -> one alert."""

from dataclasses import asdict
from pathlib import Path

import dagster as dg

from ..alerts.freshness import FRESHNESS_GRACE_DAYS, overdue_month
from ..landing.months import complete_months
from .jobs import OverdueMonthConfig, freshness_alert_job

FRESHNESS_SCHEDULE = "landing_freshness"
# Every morning (UTC), before people start their day: a late month is news by then.
FRESHNESS_CRON = "0 7 * * *"


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
