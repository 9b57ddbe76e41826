"""The alert sensor's tick message tells a tick that raised alerts from one that did not."""

from streamflow_dagster.alerts.model import (
    RAISED_KEY,
    Alert,
    dump_cursor,
    parse_cursor,
    tick_summary,
)


def _alert(message: str, severity: str = "ERROR") -> Alert:
    return Alert(kind="check_failed", severity=severity, message=message, dedup_key=message)


def test_a_tick_that_raised_alerts_names_each_one():
    new = [_alert("Check a / b failed for 2024-07-31\nmore"), _alert("Run x failed", "WARN")]
    text = tick_summary(new, found=3, sent=1, failed=0)
    assert text.startswith("RAISED 2 alert(s): ")
    assert "ERROR Check a / b failed for 2024-07-31; WARN Run x failed" in text
    assert "more" not in text  # one line per alert


def test_quiet_ticks_say_no_new_failures():
    assert tick_summary([], found=0, sent=0, failed=0).startswith("no new failures (")
    repeated = tick_summary([], found=2, sent=0, failed=1)
    assert repeated.startswith("no new failures: 2 failure(s) read were alerted before")
    assert "RAISED" not in repeated


def test_the_cursor_leads_with_the_alerts_the_tick_raised_and_reads_back_positions_only():
    text = dump_cursor({"failure": "c1", RAISED_KEY: 2})
    assert text.startswith('{"alerts_raised": 2, ')  # what the UI's cursor column shows first
    assert parse_cursor(text) == {"failure": "c1"}
