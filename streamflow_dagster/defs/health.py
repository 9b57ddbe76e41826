"""`platform_health`: every month's health as one table in the UI, refreshed when runs end.

The table is `streamflow status`'s (monitoring/health.py). It is recorded by a sensor, not
computed by a step: a month whose run failed (red) is the one to show, and a step downstream
of the month's assets would not run then. The asset is external (nothing materializes it in a
run); its materializations are the sensor's, one per tick after a run ended or an alert was
recorded, each with the table as markdown.
"""

from __future__ import annotations

import json

import dagster as dg

from ..platform.settings import load_settings
from .monitors import MONITORING_GROUP
from .resources import WarehouseResource

PLATFORM_HEALTH = "platform_health"

platform_health = dg.AssetSpec(
    PLATFORM_HEALTH,
    group_name=MONITORING_GROUP,
    kinds={"postgres"},
    description="Every month at a glance: rows landed and rejected, failed checks (blocking and "
    "warning), drift level, model version and decision, realized AUC and calibration, open "
    "alerts. Recorded by platform_health_sensor after runs end; `streamflow status` prints it.",
)


def _state(instance: dg.DagsterInstance, warehouse: WarehouseResource) -> dict:
    """What changes the table: the newest finished run and the newest alert."""
    newest = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.SUCCESS,
                dg.DagsterRunStatus.FAILURE,
                dg.DagsterRunStatus.CANCELED,
            ]
        ),
        limit=1,
    )
    with warehouse.connect() as conn:
        has_alerts = conn.execute("select to_regclass('ops.alerts')").fetchone()[0]
        alert = conn.execute("select max(id) from ops.alerts").fetchone()[0] if has_alerts else None
    return {"run": newest[0].run_id if newest else None, "alert": alert}


@dg.sensor(
    name="platform_health_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records platform_health (every month's health table) after a run ends or an "
    "alert is recorded.",
)
def platform_health_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """The health table as a materialization of platform_health, when something changed."""
    from ..monitoring.health import render_markdown
    from ..monitoring.health_sources import month_health, raw_months, registry_months
    from ..platform.mlflow_store import tracking_uri

    state = _state(context.instance, warehouse)
    if state["run"] is None or json.dumps(state) == context.cursor:
        return dg.SkipReason("no run ended and no alert was recorded since the last table")
    with warehouse.connect() as conn:
        months = sorted(raw_months(conn))
        health = month_health(
            context.instance, conn, registry_months(tracking_uri(load_settings())), months
        )
    red = [m.as_of for m in health if m.failed_blocking]
    return dg.SensorResult(
        asset_events=[
            dg.AssetMaterialization(
                PLATFORM_HEALTH,
                description=f"{len(health)} month(s); failed blocking checks in: "
                f"{', '.join(red) or 'none'}",
                metadata={
                    "months": len(health),
                    "months_with_failed_blocking_checks": ", ".join(red) or "none",
                    "health": dg.MetadataValue.md(render_markdown(health)),
                    "command": "streamflow status [--months A..B]",
                },
            )
        ],
        cursor=json.dumps(state),
    )
