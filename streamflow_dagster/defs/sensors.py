"""Automation: a month that lands complete runs through the graph (its partition exists);
failed checks and runs become alerts."""

import json
from pathlib import Path

import dagster as dg

from ..alerts.model import (
    RAISED_KEY,
    Alert,
    check_alert,
    dump_cursor,
    parse_cursor,
    run_failure_alert,
    tick_summary,
)
from ..landing.arrivals import parse_state, plan_arrivals
from ..landing.completeness import MANIFEST, REFUSED
from ..landing.months import LABELS_FILE, landed_months, misnamed_months
from ..platform.settings import landing_settle_seconds
from .jobs import LABELS_JOB, MONTHLY_JOB
from .month_runs import known_months
from .resources import AlertsResource, WarehouseResource


def build_landing_sensor(landing_dir: Path, jobs: list) -> dg.SensorDefinition:
    """`jobs`: the monthly job and the labels job, which the sensor's requests name."""

    @dg.sensor(
        name="landing_sensor",
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts a month through the graph once its files are complete in "
        f"{landing_dir} (a {MANIFEST} that matches, or files unchanged for the settle time), "
        f"again when its files change, and (without re-scoring) when its late {LABELS_FILE} "
        "lands.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """New or changed complete month -> one run; late labels -> one labels run."""
        return landing_tick(context, landing_dir)

    return landing_sensor


def landing_tick(context: dg.SensorEvaluationContext, landing_dir: Path) -> dg.SensorResult:
    known = known_months(context.instance, [MONTHLY_JOB, LABELS_JOB])
    plan = plan_arrivals(
        landing_dir,
        landed_months(landing_dir),
        known,
        parse_state(context.cursor),
        landing_settle_seconds(),
    )
    for check in plan.not_ready:
        (context.log.warning if check.status == REFUSED else context.log.info)(check.describe())
    misnamed = [f"{name} ({reason})" for name, reason in misnamed_months(landing_dir)]
    for line in misnamed:
        context.log.warning(f"landing folder skipped, not a month partition: {line}")
    cursor = json.dumps(plan.state, sort_keys=True)
    requests = [
        dg.RunRequest(
            partition_key=c.month,
            run_key=f"landed-{c.month}-{c.fingerprint[:16]}",
            job_name=MONTHLY_JOB,
        )
        for c in plan.new + plan.changed
    ] + [
        dg.RunRequest(
            partition_key=c.month,
            run_key=f"labels-{c.month}-{c.labels_fingerprint[:16]}",
            job_name=LABELS_JOB,
        )
        for c in plan.late_labels
    ]
    if not requests:
        waiting = f"; not complete yet: {len(plan.not_ready)}" if plan.not_ready else ""
        return dg.SensorResult(
            skip_reason=f"no new or changed complete month, no late labels in {landing_dir}"
            + waiting
            + (f"; skipped folders: {'; '.join(misnamed)}" if misnamed else ""),
            cursor=cursor,
        )
    for label, checks in (
        ("new landed month(s)", plan.new),
        ("month(s) whose files changed since they ran", plan.changed),
        ("labels landed for", plan.late_labels),
    ):
        if checks:
            context.log.info(f"{label}: {', '.join(c.month for c in checks)}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)


# -- alerts ----------------------------------------------------------------------------
# Run ends whose check evaluations are read; only RUN_FAILURE is itself an alert.
RUN_END_EVENTS = {
    "success": dg.DagsterEventType.RUN_SUCCESS,
    "failure": dg.DagsterEventType.RUN_FAILURE,
    "canceled": dg.DagsterEventType.RUN_CANCELED,
}
# Runs read per kind of run end and tick: a backlog drains over a few ticks, each short.
MAX_RUNS_PER_TICK = 50
PARTITION_TAG = "dagster/partition"


def _root_message(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error is not None else "(no error recorded)"


def failed_check_alerts(instance: dg.DagsterInstance, run: dg.DagsterRun, ui_url: str):
    """One alert per failed check evaluation (WARN or ERROR) of a finished run."""
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        yield check_alert(
            asset=evaluation.asset_key.to_user_string(),
            check_name=evaluation.check_name,
            partition=evaluation.partition or run.tags.get(PARTITION_TAG),
            severity=evaluation.severity.value,
            description=evaluation.description,
            metadata={k: v.value for k, v in evaluation.metadata.items()},
            run_id=run.run_id,
            ui_url=ui_url,
        )


def failed_run_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, ui_url: str) -> Alert:
    """The failed run, naming each failed step and its innermost error."""
    records = instance.get_records_for_run(
        run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    ).records
    steps = [
        r.event_log_entry.dagster_event
        for r in records
        if r.event_log_entry.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    errors = [f"{e.step_key}: {_root_message(e.step_failure_data.error)}" for e in steps]
    if not errors:  # failed outside any step: e.g. run monitoring found its worker dead
        errors = [r.event_log_entry.message for r in records if r.event_log_entry.message][-1:]
    return run_failure_alert(
        run_id=run.run_id,
        job_name=run.job_name,
        partition=run.tags.get(PARTITION_TAG),
        failed_steps=[e.step_key for e in steps],
        errors=errors,
        ui_url=ui_url,
    )


def collect_alerts(
    instance: dg.DagsterInstance, cursor: dict[str, str], ui_url: str
) -> tuple[list[Alert], dict[str, str]]:
    """Alerts of the runs that ended after `cursor`, and the cursor past them.

    Reads run ends (mirrored into the index in every storage) rather than check events,
    whose global cursor the default run-sharded SQLite storage refuses.
    """
    alerts, cursor = [], dict(cursor)
    for name, event_type in RUN_END_EVENTS.items():
        result = instance.fetch_run_status_changes(
            event_type, limit=MAX_RUNS_PER_TICK, cursor=cursor.get(name), ascending=True
        )
        for record in result.records:
            run = instance.get_run_by_id(record.run_id)
            if run is None:
                continue  # deleted since it ended: nothing left to link to
            alerts.extend(failed_check_alerts(instance, run, ui_url))
            if event_type == dg.DagsterEventType.RUN_FAILURE:
                alerts.append(failed_run_alert(instance, run, ui_url))
        if result.records:
            cursor[name] = result.cursor
    return alerts, cursor


@dg.sensor(
    name="alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns every failed asset check (WARN or ERROR) and every failed run into one "
    "alert: ops.alerts, the Dagster log, and the webhook / Slack when configured.",
)
def alert_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> dg.SkipReason:
    """Failed checks and runs since the last tick -> one alert each, deduplicated."""
    found, cursor = collect_alerts(context.instance, parse_cursor(context.cursor), alerts.ui_url)
    new, sent, failed = alerts.publish(warehouse, found, context.log)
    # The UI lists each tick's cursor, not its skip reason: the count of alerts this tick
    # raised leads it ({"alerts_raised": 2, ...}), so a tick that raised alerts stands out.
    context.update_cursor(dump_cursor({**cursor, RAISED_KEY: len(new)}))
    return dg.SkipReason(tick_summary(new, len(found), sent, failed))
