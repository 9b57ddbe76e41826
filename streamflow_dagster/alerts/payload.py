"""What a sink receives: one line of text, and Slack blocks with the same facts as fields."""

from __future__ import annotations

from .model import CHECK_FAILED, MONTH_OVERDUE, RUN_FAILED, Alert

TITLES = {
    CHECK_FAILED: "check failed",
    RUN_FAILED: "run failed",
    MONTH_OVERDUE: "month overdue",
}
# Slack rejects a section with more than 10 fields and a field over 2,000 characters;
# a long value (e.g. sample rejection reasons) is cut well below that to stay readable.
MAX_SECTION_FIELDS = 10
MAX_VALUE_CHARS = 500


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def title(alert: Alert) -> str:
    return f"StreamFlow {TITLES.get(alert.kind, alert.kind)} ({alert.severity})"


def text(alert: Alert) -> str:
    """The alert in one message: what, where, and the link to the run."""
    link = f" Run: {alert.run_url}" if alert.run_url else ""
    return f"[{alert.severity}] {alert.message}.{link}"


def facts(alert: Alert) -> list[tuple[str, str]]:
    """(label, value) pairs: the alert's coordinates, then its metadata."""
    coordinates = [
        ("Asset", alert.asset),
        ("Partition", alert.partition),
        ("Check", alert.check_name),
        ("Severity", alert.severity),
    ]
    shown = [(label, value) for label, value in coordinates if value]
    return shown + [(key, _cut(_show(value))) for key, value in alert.metadata.items()]


def _field(label: str, value: str) -> dict:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def blocks(alert: Alert) -> list[dict]:
    """Slack Block Kit: a header, the message, the facts as fields, the run link."""
    pairs = facts(alert)
    out = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title(alert), 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(alert.message, 2900)}},
    ]
    for start in range(0, len(pairs), MAX_SECTION_FIELDS):
        chunk = pairs[start : start + MAX_SECTION_FIELDS]
        out.append({"type": "section", "fields": [_field(k, v) for k, v in chunk]})
    if alert.run_url:
        link = f"<{alert.run_url}|Open the run in Dagster>"
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
    return out


def webhook_payload(alert: Alert) -> dict:
    """A Slack-compatible JSON body (`text` + `blocks`) that also carries the raw facts."""
    return {
        "text": text(alert),
        "blocks": blocks(alert),
        "alert": {
            "kind": alert.kind,
            "severity": alert.severity,
            "asset": alert.asset,
            "partition": alert.partition,
            "check_name": alert.check_name,
            "message": alert.message,
            "metadata": alert.metadata,
            "run_id": alert.run_id,
            "run_url": alert.run_url,
            "dedup_key": alert.dedup_key,
        },
    }
