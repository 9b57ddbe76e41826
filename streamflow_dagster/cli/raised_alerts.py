"""The alerts a command's runs raised, as the deployment's alert sensor recorded them.

The alert sensor (in the daemon) turns failed checks and runs into rows of ops.alerts on
its own ticks, every ALERT_TICK_S. A command that ends by listing the alerts of its runs
first waits for one tick that started after its last run ended, so the list is complete.
"""

from __future__ import annotations

import time

import dagster as dg
import psycopg

ALERT_SENSOR = "alert_sensor"
# The sensor's interval (defs/sensors.py) plus a loaded machine's evaluation time.
ALERT_TICK_WAIT_S = 240
POLL_S = 2


def wait_for_alert_tick(instance: dg.DagsterInstance, workspace, after: float) -> bool:
    """Wait for an alert_sensor tick that started at or after `after` (epoch seconds) to end.

    False when none ended within ALERT_TICK_WAIT_S (the sensor is stopped, or the daemon).
    """
    from dagster._core.scheduler.instigation import TickStatus

    (location,) = workspace.code_locations
    (repository,) = location.get_repositories().values()
    sensor = repository.get_sensor(ALERT_SENSOR)
    origin_id, selector_id = sensor.get_remote_origin_id(), sensor.selector_id
    ended = {TickStatus.SKIPPED, TickStatus.SUCCESS, TickStatus.FAILURE}
    deadline = time.monotonic() + ALERT_TICK_WAIT_S
    while time.monotonic() < deadline:
        ticks = instance.get_ticks(origin_id, selector_id, after=after, limit=5)
        if any(tick.status in ended for tick in ticks):
            return True
        time.sleep(POLL_S)
    return False


def raised_alerts(conn: psycopg.Connection, run_ids: list[str]) -> list[tuple[str, str]]:
    """(severity, first line of the message) of each alert about one of `run_ids`."""
    exists = conn.execute("select to_regclass('ops.alerts')").fetchone()[0]
    if not exists:
        return []
    rows = conn.execute(
        "select severity, message from ops.alerts where run_id = any(%s) order by id",
        (run_ids,),
    ).fetchall()
    return [(severity, message.splitlines()[0]) for severity, message in rows]
