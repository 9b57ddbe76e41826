"""Alerts as plain data: dedup keys, the Slack-compatible payload, and when a month is late."""

import json
from datetime import date

import pytest

from streamflow_dagster.alerts import payload, sinks
from streamflow_dagster.alerts.freshness import (
    FRESHNESS_GRACE_DAYS,
    expected_month,
    overdue_alert,
    overdue_month,
)
from streamflow_dagster.alerts.model import (
    check_alert,
    dump_cursor,
    parse_cursor,
    plain,
    run_failure_alert,
)

UI = "http://127.0.0.1:3000/"


def reject_rate_alert(partition="2024-01-31", run_id="r1"):
    return check_alert(
        asset="raw_subscriptions",
        check_name="reject_rate",
        partition=partition,
        severity="ERROR",
        description="9 of 13 rows rejected (69.23%), over the 2% threshold",
        metadata={"rows_rejected": 9, "reject_rate": 0.692308, "threshold": 0.02},
        run_id=run_id,
        ui_url=UI,
    )


def test_check_alert_is_deduplicated_per_asset_check_and_partition():
    first, rerun = reject_rate_alert(run_id="r1"), reject_rate_alert(run_id="r2")
    assert first.dedup_key == rerun.dedup_key  # the same failure seen again: one alert
    assert reject_rate_alert(partition="2024-02-29").dedup_key != first.dedup_key
    other_check = check_alert(
        asset="raw_subscriptions",
        check_name="schema",
        partition="2024-01-31",
        severity="WARN",
        description=None,
        metadata={},
        run_id="r1",
        ui_url=UI,
    )
    assert other_check.dedup_key != first.dedup_key
    assert first.run_url == "http://127.0.0.1:3000/runs/r1"


def test_run_failure_is_deduplicated_per_run_and_names_the_steps():
    alert = run_failure_alert(
        run_id="abc",
        job_name="streamflow_monthly",
        partition="2024-01-31",
        failed_steps=["landing_ingestion"],
        errors=["landing_ingestion: blocking check failed"],
        ui_url=UI,
    )
    assert alert.dedup_key == "run_failed|abc"
    assert alert.asset == "landing_ingestion" and alert.severity == "ERROR"
    assert "streamflow_monthly for 2024-01-31 failed: landing_ingestion" in alert.message
    again = run_failure_alert(
        run_id="abc", job_name="j", partition=None, failed_steps=[], errors=[], ui_url=UI
    )
    assert again.dedup_key == alert.dedup_key and again.asset is None


def test_webhook_payload_is_slack_compatible_and_carries_every_fact():
    alert = reject_rate_alert()
    body = json.loads(json.dumps(payload.webhook_payload(alert)))  # JSON all the way
    assert body["text"].startswith("[ERROR] Check raw_subscriptions / reject_rate failed for")
    assert alert.run_url in body["text"]
    fields = {
        f["text"].split("\n")[0].strip("*"): f["text"].split("\n", 1)[1]
        for block in body["blocks"]
        for f in block.get("fields", [])
    }
    assert fields["Asset"] == "raw_subscriptions"
    assert fields["Partition"] == "2024-01-31"
    assert fields["Check"] == "reject_rate"
    assert fields["Severity"] == "ERROR"
    assert fields["rows_rejected"] == "9" and fields["threshold"] == "0.02"
    assert body["blocks"][0]["type"] == "header"
    assert alert.run_url in body["blocks"][-1]["elements"][0]["text"]
    assert body["alert"]["metadata"] == alert.metadata
    assert body["alert"]["dedup_key"] == alert.dedup_key


def test_payload_respects_slack_limits():
    alert = check_alert(
        asset="a",
        check_name="c",
        partition=None,
        severity="WARN",
        description="x",
        metadata={f"key_{i}": "v" * 5000 for i in range(15)},
        run_id="r",
        ui_url=UI,
    )
    sections = [b for b in payload.blocks(alert) if "fields" in b]
    assert sum(len(s["fields"]) for s in sections) == 18  # asset, check, severity + 15
    assert all(len(s["fields"]) <= payload.MAX_SECTION_FIELDS for s in sections)
    assert all(len(f["text"]) < 2000 for s in sections for f in s["fields"])


def test_metadata_becomes_plain_json():
    class Schema:
        def __str__(self):
            return "columns: a, b"

    assert plain({"n": 1, "l": (1, "x"), "o": Schema(), "d": {"k": None}}) == {
        "n": 1,
        "l": [1, "x"],
        "o": "columns: a, b",
        "d": {"k": None},
    }


def test_cursor_round_trip():
    assert parse_cursor(None) == {}
    assert parse_cursor(dump_cursor({"failure": "c1", "success": "c2"})) == {
        "failure": "c1",
        "success": "c2",
    }


@pytest.mark.parametrize(
    "today, expected",
    [
        ("2024-03-05", "2024-01-31"),  # Feb 29 + 5 days is Mar 5: still on time
        ("2024-03-06", "2024-02-29"),
        ("2024-03-31", "2024-02-29"),  # the month that ends today is not due yet
        ("2025-01-06", "2024-12-31"),
        ("2025-01-05", "2024-11-30"),
    ],
)
def test_expected_month_is_the_last_month_end_past_its_grace(today, expected):
    assert FRESHNESS_GRACE_DAYS == 5
    assert expected_month(date.fromisoformat(today)).isoformat() == expected


def test_overdue_month_and_its_alert():
    landed = ["2024-01-31", "2024-02-29"]
    assert overdue_month(date(2024, 4, 5), landed) is None  # March due after Apr 5
    late = overdue_month(date(2024, 4, 8), landed)
    assert (late.month, late.deadline, late.days_late) == ("2024-03-31", "2024-04-05", 3)
    assert late.newest_landed == "2024-02-29" and late.missing_months == 1
    assert overdue_month(date(2024, 4, 8), [*landed, "2024-03-31"]) is None
    assert overdue_month(date(2024, 4, 8), []) is None  # nothing landed yet: nothing late

    alert = overdue_alert(late, "/data/landing")
    assert alert.dedup_key == "month_overdue|2024-03-31" and alert.partition == "2024-03-31"
    assert "2024-03-31 has not landed in /data/landing" in alert.message
    assert alert.metadata["days_late"] == 3 and alert.run_url is None
    assert "Run:" not in payload.text(alert)


def test_slack_gets_the_same_text_and_blocks():
    class RecordingClient:  # the slack_sdk WebClient method the sink calls
        def __init__(self):
            self.calls = []

        def chat_postMessage(self, **kwargs):  # noqa: N802 (slack_sdk's name)
            self.calls.append(kwargs)

    client, alert = RecordingClient(), reject_rate_alert()
    sinks.post_slack(client, "#data-alerts", alert)
    assert client.calls == [
        {"channel": "#data-alerts", "text": payload.text(alert), "blocks": payload.blocks(alert)}
    ]
