"""Alerts end to end on the real PostgreSQL: failed checks and runs, the webhook, freshness."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import psycopg
import pytest

from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.jobs import FRESHNESS_JOB
from streamflow_dagster.defs.landing import landing_ingestion
from streamflow_dagster.defs.resources import AlertsResource, LandingResource, WarehouseResource
from streamflow_dagster.defs.schedules import FRESHNESS_SCHEDULE
from tests.integration.helpers import write_month
from tests.integration.landing.test_ingestion import clean_month, subs

pytestmark = pytest.mark.integration

JAN, FEB = "2024-01-31", "2024-02-29"
UI = "http://ui.test:3000"


class Receiver:
    """A webhook on 127.0.0.1: records every POSTed JSON body; answers `status`."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_key(self) -> dict[str, dict]:
        return {b["alert"]["dedup_key"]: b for b in self.bodies}


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def make_defs(tmp_path, database_url, receiver):
    return build_definitions(
        warehouse=WarehouseResource(database_url=database_url),
        landing=LandingResource(path=str(tmp_path / "landing")),
        alerts=AlertsResource(ui_url=UI, webhook_url=receiver.url),
    )


def tick(defs, instance, cursor=None) -> str | None:
    """One evaluation of the alert sensor; returns its new cursor."""
    resources = {key: defs.resources[key] for key in ("warehouse", "alerts")}
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    defs.get_sensor_def("alert_sensor")(context)
    return context.cursor


def alert_rows(database_url) -> list[dict]:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("select * from ops.alerts order by id").fetchall()


def deliveries(database_url) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select sink, status, attempts from ops.alert_deliveries order by alert_id"
        ).fetchall()


def test_a_high_reject_rate_alerts_once_per_failed_check_and_once_for_the_run(
    tmp_path, database_url, receiver
):
    month = clean_month(("u1", "u2", "u3", "u4"))
    month["subscriptions"] = [
        *subs("u1"),
        *subs(""),
        *subs("u3", fee="-1.00"),
        *subs("u4", fee="x"),  # 3 of 4 rows rejected
    ]
    write_month(tmp_path / "landing", JAN, month)
    defs = make_defs(tmp_path, database_url, receiver)
    with dg.instance_for_test() as instance:
        run = dg.materialize(
            [landing_ingestion],
            partition_key=JAN,
            instance=instance,
            resources={
                "warehouse": WarehouseResource(database_url=database_url),
                "landing": LandingResource(path=str(tmp_path / "landing")),
            },
            raise_on_error=False,
        )
        assert not run.success  # the blocking reject_rate check stops the month
        failed = {
            (c.asset_key.to_user_string(), c.check_name)
            for c in run.get_asset_check_evaluations()
            if not c.passed
        }
        assert ("raw_subscriptions", "reject_rate") in failed

        cursor = tick(defs, instance)
        rows = alert_rows(database_url)
        checks = {(r["asset"], r["check_name"]) for r in rows if r["kind"] == "check_failed"}
        assert checks == failed and len(rows) == len(failed) + 1
        reject = next(r for r in rows if r["check_name"] == "reject_rate")
        assert reject["partition"] == JAN and reject["severity"] == "ERROR"
        assert reject["metadata"]["rows_rejected"] == 3 and reject["metadata"]["threshold"] == 0.02
        assert reject["run_id"] == run.run_id
        assert reject["run_url"] == f"{UI}/runs/{run.run_id}"
        failure = next(r for r in rows if r["kind"] == "run_failed")
        assert failure["run_id"] == run.run_id and failure["partition"] == JAN
        assert "reject_rate" in failure["message"]

        # One POST per alert, the reject rate's with every fact a person needs.
        assert len(receiver.bodies) == len(rows)
        assert set(receiver.by_key()) == {r["dedup_key"] for r in rows}
        body = receiver.by_key()[reject["dedup_key"]]
        assert "raw_subscriptions / reject_rate" in body["text"]
        assert reject["run_url"] in body["text"]
        field_text = json.dumps(body["blocks"])
        for fact in ("raw_subscriptions", JAN, "reject_rate", "rows_rejected", reject["run_url"]):
            assert fact in field_text
        assert deliveries(database_url) == [("webhook", "sent", 1)] * len(rows)

        # Re-evaluated: from its cursor nothing is new; from scratch the dedup key holds.
        tick(defs, instance, cursor)
        tick(defs, instance, None)
        assert len(alert_rows(database_url)) == len(rows)
        assert len(receiver.bodies) == len(rows)


@dg.asset(check_specs=[dg.AssetCheckSpec("enough_rows", asset="tiny")])
def tiny():
    """Succeeds, but its non-blocking WARN check fails: no run failure to catch it."""
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description="2 rows, expected at least 10",
                metadata={"rows": 2, "threshold": 10},
            )
        ]
    )


@dg.asset
def broken():
    raise RuntimeError("the export is unreadable: ask the data provider")


def test_a_warn_check_in_a_successful_run_and_a_failed_run_alert_once_each(
    tmp_path, database_url, receiver
):
    defs = make_defs(tmp_path, database_url, receiver)
    with dg.instance_for_test() as instance:
        ok = dg.materialize([tiny], instance=instance)
        assert ok.success
        receiver.status = 503  # the webhook is down: the alert is kept, delivery retried
        cursor = tick(defs, instance)
        rows = alert_rows(database_url)
        assert [(r["asset"], r["check_name"], r["severity"]) for r in rows] == [
            ("tiny", "enough_rows", "WARN")
        ]
        assert rows[0]["metadata"] == {"rows": 2, "threshold": 10}
        assert receiver.bodies == [] and deliveries(database_url) == [("webhook", "failed", 1)]

        bad = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not bad.success
        cursor = tick(defs, instance, cursor)  # still down: one try, the new alert waits
        rows = alert_rows(database_url)
        assert [r["kind"] for r in rows] == ["check_failed", "run_failed"]
        assert rows[1]["run_id"] == bad.run_id and rows[1]["asset"] == "broken"
        assert "ask the data provider" in rows[1]["message"]
        assert deliveries(database_url) == [("webhook", "failed", 2), ("webhook", "pending", 0)]

        receiver.status = 200
        tick(defs, instance, cursor)
        assert len(alert_rows(database_url)) == 2
        assert [b["alert"]["kind"] for b in receiver.bodies] == ["check_failed", "run_failed"]
        assert deliveries(database_url) == [("webhook", "sent", 3), ("webhook", "sent", 1)]


def land_complete(landing, month):
    write_month(landing, month, clean_month(("u1",)))


def evaluate_freshness(defs, day: str):
    schedule = defs.get_schedule_def(FRESHNESS_SCHEDULE)
    when = datetime.fromisoformat(day).replace(hour=7, tzinfo=UTC)
    return schedule(dg.build_schedule_context(scheduled_execution_time=when))


def test_an_overdue_month_alerts_once_and_an_on_time_one_not(tmp_path, database_url, receiver):
    landing = tmp_path / "landing"
    land_complete(landing, JAN)
    land_complete(landing, FEB)
    defs = make_defs(tmp_path, database_url, receiver)

    assert isinstance(evaluate_freshness(defs, "2024-04-05"), dg.SkipReason)  # March: grace
    request = evaluate_freshness(defs, "2024-04-08")
    assert request.run_key == "overdue-2024-03-31"
    job = defs.resolve_job_def(FRESHNESS_JOB)
    with dg.instance_for_test() as instance:
        for _ in range(2):  # the schedule's run key stops a second run; the table would too
            assert job.execute_in_process(run_config=request.run_config, instance=instance).success
    rows = alert_rows(database_url)
    assert [(r["kind"], r["partition"]) for r in rows] == [("month_overdue", "2024-03-31")]
    assert rows[0]["metadata"]["days_late"] == 3
    assert rows[0]["metadata"]["newest_landed"] == FEB
    assert [b["alert"]["dedup_key"] for b in receiver.bodies] == ["month_overdue|2024-03-31"]

    land_complete(landing, "2024-03-31")
    assert isinstance(evaluate_freshness(defs, "2024-04-08"), dg.SkipReason)


def test_sinks_follow_the_settings():
    assert AlertsResource().senders() == {}  # the table and the Dagster log only
    both = AlertsResource(webhook_url="http://127.0.0.1:9/hook", slack_token="xoxb-test")
    assert set(both.senders()) == {"webhook"}  # Slack needs a channel too
    slack = AlertsResource(slack_token="xoxb-test", slack_channel="#data-alerts").senders()
    assert type(slack["slack"].args[0]).__name__ == "WebClient"  # dagster-slack's client
