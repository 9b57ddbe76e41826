"""The landing sensor: a new complete month is requested exactly once."""

from __future__ import annotations

import dagster as dg
import pytest

from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.month_runs import claim_months, known_months
from streamflow_dagster.defs.resources import LandingResource
from streamflow_dagster.landing.contract import LANDING_TABLES

pytestmark = pytest.mark.integration


def land(landing, month, *, labels=True, skip=()):
    folder = landing / month
    folder.mkdir(parents=True)
    for table in LANDING_TABLES:
        if table.file in skip or (table.name == "labels" and not labels):
            continue
        (folder / table.file).write_text(",".join(table.column_names) + "\n")


def evaluate(defs, instance, cursors: dict | None = None):
    """One tick; `cursors` carries the sensor's cursor from tick to tick, as the daemon does."""
    sensor = defs.get_sensor_def("landing_sensor")
    cursors = {} if cursors is None else cursors
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, cursor=cursors.get("landing_sensor")
    )
    result = sensor(context)
    cursors["landing_sensor"] = result.cursor
    for request in result.run_requests or []:  # the daemon makes a run of each request
        instance.create_run_for_job(
            defs.resolve_job_def(request.job_name),
            tags={**request.tags, "dagster/partition": request.partition_key},
        )
    return result


def requested(result) -> list[tuple[str, str]]:
    return [(r.job_name, r.partition_key) for r in result.run_requests]


def test_late_labels_rerun_their_month_once_without_rescoring(tmp_path):
    landing = tmp_path / "landing"
    defs = build_definitions(landing=LandingResource(path=str(landing)))
    cursors: dict = {}
    with dg.instance_for_test() as instance:
        land(landing, "2024-01-31")  # labels with the month: one run, no second one
        land(landing, "2024-02-29", labels=False)
        assert requested(evaluate(defs, instance, cursors)) == [
            ("streamflow_monthly", "2024-01-31"),
            ("streamflow_monthly", "2024-02-29"),
        ]
        assert evaluate(defs, instance, cursors).run_requests == []

        labels = next(t for t in LANDING_TABLES if t.name == "labels")
        (landing / "2024-02-29" / labels.file).write_text("user_id,churn_label\n")
        assert requested(evaluate(defs, instance, cursors)) == [("streamflow_labels", "2024-02-29")]
        assert evaluate(defs, instance, cursors).run_requests == []
        # A fresh cursor (a new daemon on an existing instance) reruns nothing.
        assert evaluate(defs, instance, {}).run_requests == []

    job = defs.resolve_job_def("streamflow_labels")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"raw_labels", "churn_labels", "training_set", "churn_model"} <= keys
    assert {"production_model", "realized_performance"} <= keys
    assert not {"churn_scores", "feature_drift", "serving_skew"} & keys
    # Skew is measured after serving, never inside a month's run.
    monthly = defs.resolve_job_def("streamflow_monthly").asset_layer.executable_asset_keys
    assert "serving_skew" not in {key.to_user_string() for key in monthly}


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
        assert known_months(instance, ["streamflow_monthly"]) == {"2024-01-31"}

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


def test_a_month_settles_first_and_runs_again_when_its_files_change(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    defs = build_definitions(landing=LandingResource(path=str(landing)))
    cursors: dict = {}
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("STREAMFLOW_LANDING_SETTLE_SECONDS", "3600")
        land(landing, "2024-01-31")  # just written, no manifest: still settling
        waiting = evaluate(defs, instance, cursors)
        assert waiting.run_requests == []
        assert "not complete yet: 1" in waiting.skip_reason.skip_message

        monkeypatch.setenv("STREAMFLOW_LANDING_SETTLE_SECONDS", "0")
        first = evaluate(defs, instance, cursors).run_requests
        assert [(r.partition_key, r.job_name) for r in first] == [
            ("2024-01-31", "streamflow_monthly")
        ]
        usage = landing / "2024-01-31" / "usage_agg_30d.csv"
        usage.write_text(usage.read_text() + "u1,1,1,1,1,1\n")  # the rest of the file arrives
        again = evaluate(defs, instance, cursors).run_requests
        assert [(r.partition_key, r.job_name) for r in again] == [
            ("2024-01-31", "streamflow_monthly")
        ]
        assert again[0].run_key != first[0].run_key  # a spent run key would block the rerun
        assert evaluate(defs, instance, cursors).run_requests == []


def test_misnamed_and_out_of_range_folders_are_reported_by_name_and_reason(tmp_path):
    landing = tmp_path / "landing"
    defs = build_definitions(landing=LandingResource(path=str(landing)))
    with dg.instance_for_test() as instance:
        for name in ("2024-02-30", "2024-02-28", "2023-12-31", "2999-12-31"):
            land(landing, name)
        result = evaluate(defs, instance)
        assert result.run_requests == []
        reason = result.skip_reason.skip_message
        assert "2024-02-30 (AS_OF '2024-02-30' is not an ISO date" in reason
        assert "2024-02-28 (AS_OF '2024-02-28' is not the last day of its month (2024-02-29))" in (
            reason
        )
        assert "2023-12-31 (before the first month 2024-01-31" in reason
        assert "STREAMFLOW_FIRST_MONTH" in reason
        assert "2999-12-31 (the month 2999-12-31 has not ended yet" in reason


def test_months_the_cli_claimed_are_not_requested_by_the_sensor(tmp_path):
    landing = tmp_path / "landing"
    defs = build_definitions(landing=LandingResource(path=str(landing)))
    with dg.instance_for_test() as instance:
        land(landing, "2024-01-31")
        land(landing, "2024-02-29")
        claim_months(instance, ["2024-01-31"])  # what `streamflow run` does before the daemon
        assert requested(evaluate(defs, instance)) == [("streamflow_monthly", "2024-02-29")]
