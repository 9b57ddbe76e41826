"""Sending one alert to a webhook or Slack; delivering what is queued, recording each try."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import psycopg

from . import payload, store
from .model import Alert

WEBHOOK = "webhook"
SLACK = "slack"
# A webhook that has not answered in 10 s is down; the next tick retries it.
WEBHOOK_TIMEOUT_S = 10

Sender = Callable[[Alert], None]


def post_webhook(url: str, alert: Alert, timeout: float = WEBHOOK_TIMEOUT_S) -> None:
    """POST the Slack-compatible JSON payload; any non-2xx answer raises."""
    body = json.dumps(payload.webhook_payload(alert)).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (configured URL)
        if not 200 <= response.status < 300:
            raise RuntimeError(f"webhook answered HTTP {response.status}")


def post_slack(client, channel: str, alert: Alert) -> None:
    """chat.postMessage through a slack_sdk WebClient (dagster-slack's SlackResource)."""
    client.chat_postMessage(channel=channel, text=payload.text(alert), blocks=payload.blocks(alert))


def deliver(
    conn: psycopg.Connection, senders: dict[str, Sender], warn: Callable[[str], None]
) -> tuple[int, int]:
    """Send every queued delivery of the configured sinks; returns (sent, failed).

    A failure is recorded on its delivery row and logged through `warn`, and the next call
    retries it (up to store.MAX_DELIVERY_ATTEMPTS): the alert itself is already in the table.
    A sink that failed once is not tried again in the same call, so a sink that is down
    costs one timeout per tick, not one per queued alert.
    """
    sent = failed = 0
    if not senders:
        return sent, failed
    down: set[str] = set()
    for delivery in store.pending(conn, list(senders)):
        if delivery.sink in down:
            continue  # stays queued for the next call, its attempts unchanged
        try:
            senders[delivery.sink](delivery.alert)
        except Exception as err:  # any sink error: recorded and retried, never lost
            error = f"{type(err).__name__}: {err}"
            store.mark(conn, delivery, error)
            warn(
                f"alert {delivery.alert.dedup_key} not delivered to {delivery.sink} "
                f"(attempt {delivery.attempts + 1} of {store.MAX_DELIVERY_ATTEMPTS}): {error}"
            )
            failed += 1
            down.add(delivery.sink)
        else:
            store.mark(conn, delivery, None)
            sent += 1
    return sent, failed
