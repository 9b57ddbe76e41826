"""The nightly serving_skew schedule: it targets the serving_skew asset and asks for the month
the API serves (online_features' newest materialized month), once per month and day."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.jobs import SERVING_SKEW_JOB, serving_skew_job
from streamflow_dagster.defs.monitor_skew import serving_skew
from streamflow_dagster.defs.schedules import ONLINE_ASSET, serving_skew_daily

NIGHT = datetime(2025, 3, 4, 2, 30, tzinfo=UTC)


def test_the_schedule_runs_the_job_of_serving_skew_alone():
    assert serving_skew_daily.job_name == SERVING_SKEW_JOB
    assert serving_skew_daily.default_status == dg.DefaultScheduleStatus.RUNNING
    job = build_definitions().resolve_job_def(SERVING_SKEW_JOB)
    assert set(job.asset_layer.selected_asset_keys) == {serving_skew.key}
    assert serving_skew_job.name == SERVING_SKEW_JOB


def test_it_asks_for_the_month_served_online_once_a_day():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT)
        skipped = serving_skew_daily(context)
        assert isinstance(skipped, dg.SkipReason) and "no month online" in skipped.skip_message
        for month in ("2025-01-31", "2025-02-28"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(ONLINE_ASSET, partition=month)
            )
        request = serving_skew_daily(context)
    assert request.partition_key == "2025-02-28"
    assert request.run_key == "serving-skew-2025-02-28-2025-03-04"
