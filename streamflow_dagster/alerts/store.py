"""ops.alerts (one row per alert, unique per dedup key) and ops.alert_deliveries (per sink).

The table is written first and is the record: a sink that fails leaves its delivery row
`failed` with the error, and the next tick retries it, so no alert is lost to a sink.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from .model import Alert

# A sink down for longer than this many ticks is not coming back by retrying; the row
# stays `failed` with its error for a person to see.
MAX_DELIVERY_ATTEMPTS = 5

DDL = """
create schema if not exists ops;
create table if not exists ops.alerts (
    id bigserial primary key,
    created_at timestamptz not null default now(),
    kind text not null,
    asset text,
    partition text,
    check_name text,
    severity text not null,
    message text not null,
    metadata jsonb not null default '{}'::jsonb,
    run_id text,
    run_url text,
    dedup_key text not null unique
);
comment on table ops.alerts is
    'One row per StreamFlow alert (failed check, failed run, overdue month); dedup_key is unique.';
create table if not exists ops.alert_deliveries (
    alert_id bigint not null references ops.alerts (id) on delete cascade,
    sink text not null,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempts integer not null default 0,
    last_error text,
    sent_at timestamptz,
    primary key (alert_id, sink)
);
"""
# Sensor ticks and the freshness run may create the tables at the same moment.
_DDL_LOCK = "select pg_advisory_xact_lock(hashtext('streamflow.ops.alerts'))"

_COLUMNS = (
    "kind, asset, partition, check_name, severity, message, metadata, run_id, run_url, dedup_key"
)


@dataclass(frozen=True)
class Delivery:
    alert_id: int
    sink: str
    attempts: int
    alert: Alert


def ensure_tables(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(_DDL_LOCK)
        conn.execute(DDL)


def record(conn: psycopg.Connection, alerts: list[Alert], sinks: list[str]) -> list[Alert]:
    """Insert the alerts not seen before (by dedup key) and queue them for `sinks`."""
    ensure_tables(conn)
    new = []
    with conn.transaction():
        for alert in alerts:
            row = conn.execute(
                f"insert into ops.alerts ({_COLUMNS}) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "on conflict (dedup_key) do nothing returning id",
                (
                    alert.kind,
                    alert.asset,
                    alert.partition,
                    alert.check_name,
                    alert.severity,
                    alert.message,
                    Jsonb(alert.metadata),
                    alert.run_id,
                    alert.run_url,
                    alert.dedup_key,
                ),
            ).fetchone()
            if row is None:
                continue  # alerted before: the dedup key says so
            for sink in sinks:
                conn.execute(
                    "insert into ops.alert_deliveries (alert_id, sink) values (%s, %s)",
                    (row[0], sink),
                )
            new.append(alert)
    return new


def pending(
    conn: psycopg.Connection, sinks: list[str], max_attempts: int = MAX_DELIVERY_ATTEMPTS
) -> list[Delivery]:
    """Deliveries to the configured sinks that have not gone out yet, oldest first."""
    ensure_tables(conn)
    rows = conn.execute(
        f"select d.alert_id, d.sink, d.attempts, {_COLUMNS} "
        "from ops.alert_deliveries d join ops.alerts a on a.id = d.alert_id "
        "where d.status <> 'sent' and d.attempts < %s and d.sink = any(%s) "
        "order by d.alert_id, d.sink",
        (max_attempts, sinks),
    ).fetchall()
    conn.commit()
    return [
        Delivery(
            alert_id=r[0],
            sink=r[1],
            attempts=r[2],
            alert=Alert(
                kind=r[3],
                asset=r[4],
                partition=r[5],
                check_name=r[6],
                severity=r[7],
                message=r[8],
                metadata=r[9],
                run_id=r[10],
                run_url=r[11],
                dedup_key=r[12],
            ),
        )
        for r in rows
    ]


def mark(conn: psycopg.Connection, delivery: Delivery, error: str | None) -> None:
    """Record one delivery attempt: sent, or failed with the error that stopped it."""
    conn.execute(
        "update ops.alert_deliveries set attempts = attempts + 1, "
        "status = case when %(error)s::text is null then 'sent' else 'failed' end, "
        "last_error = %(error)s, "
        "sent_at = case when %(error)s::text is null then now() end "
        "where alert_id = %(id)s and sink = %(sink)s",
        {"error": error, "id": delivery.alert_id, "sink": delivery.sink},
    )
    conn.commit()
