"""The landing sensor: a new complete month is requested exactly once."""

from __future__ import annotations

import dagster as dg
import pytest

from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.landing.contract import LANDING_TABLES
from streamflow_dagster.resources import LandingResource

pytestmark = pytest.mark.integration


def land(landing, month, *, labels=True, skip=()):
    folder = landing / month
    folder.mkdir(parents=True)
    for table in LANDING_TABLES:
        if table.file in skip or (table.name == "labels" and not labels):
            continue
        (folder / table.file).write_text(",".join(table.column_names) + "\n")


def evaluate(defs, instance):
    sensor = defs.get_sensor_def("landing_sensor")
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_new_month_is_requested_once(tmp_path):
    landing = tmp_path / "landing"
    defs = build_definitions(landing=LandingResource(path=str(landing)))
    with dg.instance_for_test() as instance:
        assert evaluate(defs, instance).run_requests == []

        land(landing, "2024-01-31", labels=False)  # labels arrive late: still complete
        land(landing, "2024-02-29", skip=("usage_agg_30d.csv",))  # incomplete: not yet
        (landing / "notes").mkdir()
        first = evaluate(defs, instance)
        assert [r.partition_key for r in first.run_requests] == ["2024-01-31"]
        assert instance.get_dynamic_partitions("as_of") == ["2024-01-31"]

        assert evaluate(defs, instance).run_requests == []  # the same month never twice

        (landing / "2024-02-29" / "usage_agg_30d.csv").write_text("user_id\n")
        assert [r.partition_key for r in evaluate(defs, instance).run_requests] == ["2024-02-29"]


def test_automation_is_on_by_default(tmp_path):
    defs = build_definitions(landing=LandingResource(path=str(tmp_path / "landing")))
    repo = defs.get_repository_def()
    running = dg.DefaultSensorStatus.RUNNING
    for name in ("landing_sensor", "alert_sensor"):
        assert repo.get_sensor_def(name).default_status == running
    freshness = repo.get_schedule_def("landing_freshness")
    assert freshness.default_status == dg.DefaultScheduleStatus.RUNNING
    assert (
        freshness.cron_schedule == "0 7 * * *" and freshness.job_name == "landing_freshness_alert"
    )
