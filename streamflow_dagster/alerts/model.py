"""An alert: one failed check, failed run or overdue month, as a person reads it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CHECK_FAILED = "check_failed"
RUN_FAILED = "run_failed"
MONTH_OVERDUE = "month_overdue"

# A run failure stops the month; an overdue month means nothing new gets scored.
RUN_FAILURE_SEVERITY = "ERROR"
OVERDUE_SEVERITY = "ERROR"


@dataclass(frozen=True)
class Alert:
    kind: str  # CHECK_FAILED, RUN_FAILED or MONTH_OVERDUE
    severity: str  # "ERROR" or "WARN"
    message: str
    dedup_key: str  # one alert per key, ever: the unique key of ops.alerts
    asset: str | None = None
    partition: str | None = None
    check_name: str | None = None
    metadata: dict = field(default_factory=dict)
    run_id: str | None = None
    run_url: str | None = None


def run_url(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def check_dedup_key(asset: str, check_name: str, partition: str | None) -> str:
    return "|".join([CHECK_FAILED, asset, check_name, partition or "-"])


def run_dedup_key(run_id: str) -> str:
    return f"{RUN_FAILED}|{run_id}"


def overdue_dedup_key(month: str) -> str:
    return f"{MONTH_OVERDUE}|{month}"


def plain(value):
    """A JSON value for a metadata value: numbers, text, lists and dicts as they are."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)  # e.g. a table schema: its readable form


def check_alert(
    *,
    asset: str,
    check_name: str,
    partition: str | None,
    severity: str,
    description: str | None,
    metadata: dict,
    run_id: str,
    ui_url: str,
) -> Alert:
    where = f" for {partition}" if partition else ""
    return Alert(
        kind=CHECK_FAILED,
        severity=severity,
        message=f"Check {asset} / {check_name} failed{where}: {description or 'no description'}",
        dedup_key=check_dedup_key(asset, check_name, partition),
        asset=asset,
        partition=partition,
        check_name=check_name,
        metadata=plain(metadata),
        run_id=run_id,
        run_url=run_url(ui_url, run_id),
    )


def run_failure_alert(
    *,
    run_id: str,
    job_name: str,
    partition: str | None,
    failed_steps: list[str],
    errors: list[str],
    ui_url: str,
) -> Alert:
    where = f" for {partition}" if partition else ""
    reason = "; ".join(errors) or "no step failed (see the run's logs)"
    return Alert(
        kind=RUN_FAILED,
        severity=RUN_FAILURE_SEVERITY,
        message=f"Run of {job_name}{where} failed: {reason}",
        dedup_key=run_dedup_key(run_id),
        asset=", ".join(failed_steps) or None,
        partition=partition,
        metadata={"job_name": job_name, "failed_steps": failed_steps, "errors": errors},
        run_id=run_id,
        run_url=run_url(ui_url, run_id),
    )


# Key of the alert sensor's cursor that holds how many alerts its last tick raised.
RAISED_KEY = "alerts_raised"


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """The alert sensor's cursor: one event-log cursor per kind of run end (and RAISED_KEY)."""
    state = json.loads(cursor) if cursor else {}
    state.pop(RAISED_KEY, None)  # the last tick's count, not a position
    return state


def dump_cursor(cursor: dict) -> str:
    return json.dumps(cursor, sort_keys=True)


NO_NEW_FAILURES = "no new failures"


def tick_summary(new: list[Alert], found: int, sent: int, failed: int) -> str:
    """The alert sensor's tick message: it says at a glance whether the tick raised alerts.

    A tick without run requests is always "skipped" in the UI, so the message carries the
    difference: "RAISED n alert(s): ..." names each new alert; otherwise "no new failures"
    (or the failures read had been alerted before).
    """
    deliveries = f"deliveries: {sent} sent, {failed} failed"
    if new:
        listed = "; ".join(f"{a.severity} {a.message.splitlines()[0]}" for a in new)
        return f"RAISED {len(new)} alert(s): {listed} ({deliveries})"
    if found:
        return f"{NO_NEW_FAILURES}: {found} failure(s) read were alerted before ({deliveries})"
    return f"{NO_NEW_FAILURES} ({deliveries})"
