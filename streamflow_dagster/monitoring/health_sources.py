"""Where a month's health comes from, read as it is now (no Dagster run): the warehouse (rows
landed and quarantined, ops.alerts), the Dagster instance (each check's latest evaluation for
the month, realized_performance's latest materialization) and the model registry.
"""

from __future__ import annotations

import dagster as dg
import psycopg
from psycopg import sql

from ..alerts.model import CHECK_FAILED as CHECK_ALERT
from ..alerts.model import RUN_FAILED as RUN_ALERT
from ..landing.contract import LANDING_TABLES, QUARANTINE_TABLE, RAW_SCHEMA
from .health import CheckResult, MonthHealth

PARTITION_TAG = "dagster/partition"
REALIZED_ASSET = "realized_performance"
# The newest runs read for check results: a year of months, each re-run a few times.
MAX_RUNS = 500
# Every registered version (the registry's own status reads the latest dozen).
ALL_VERSIONS = 100_000


def _count_by_month(conn: psycopg.Connection, table: sql.Identifier, months: list[str]) -> dict:
    exists = conn.execute("select to_regclass(%s)", (table.as_string(conn),)).fetchone()[0]
    if not exists:
        return {}
    query = sql.SQL(
        "select as_of::text, count(*) from {} where as_of::text = any(%s) group by 1"
    ).format(table)
    return dict(conn.execute(query, (months,)).fetchall())


def landing_rows(conn: psycopg.Connection, months: list[str]) -> dict[str, tuple[int, int]]:
    """Per month that reached schema raw: (rows loaded over the landing tables, rows rejected)."""
    landed: dict[str, int] = {}
    for table in LANDING_TABLES:
        for as_of, n in _count_by_month(
            conn, sql.Identifier(RAW_SCHEMA, table.name), months
        ).items():
            landed[as_of] = landed.get(as_of, 0) + n
    rejected = _count_by_month(conn, sql.Identifier(RAW_SCHEMA, QUARANTINE_TABLE), months)
    return {m: (landed.get(m, 0), rejected.get(m, 0)) for m in {*landed, *rejected}}


def raw_months(conn: psycopg.Connection) -> list[str]:
    """The months schema raw holds (the landing folder may have lost some)."""
    table = sql.Identifier(RAW_SCHEMA, "users")
    if not conn.execute("select to_regclass(%s)", (table.as_string(conn),)).fetchone()[0]:
        return []
    query = sql.SQL("select distinct as_of::text from {}").format(table)
    return [m for (m,) in conn.execute(query).fetchall()]


def month_checks(
    instance: dg.DagsterInstance, months: list[str]
) -> tuple[dict[str, list[CheckResult]], dict[str, dict[str, dg.DagsterRun]]]:
    """Each check's latest evaluation per month, and each month's newest run per job.

    An evaluation names its month (partitioned checks); one recorded before the checks were
    partitioned takes its run's partition tag.
    """
    wanted = set(months)
    latest: dict[str, dict[tuple[str, str], CheckResult]] = {m: {} for m in months}
    newest_runs: dict[str, dict[str, dg.DagsterRun]] = {m: {} for m in months}
    for run in instance.get_runs(limit=MAX_RUNS):  # newest first: the first result seen wins
        month = run.tags.get(PARTITION_TAG)
        if month in wanted:
            newest_runs[month].setdefault(run.job_name, run)
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        in_run: dict[str, dict[tuple[str, str], CheckResult]] = {}
        for record in records:  # oldest first: a later evaluation in the run replaces one
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            partition = evaluation.partition or month
            if partition not in wanted:
                continue
            asset = evaluation.asset_key.to_user_string()
            in_run.setdefault(partition, {})[(asset, evaluation.check_name)] = CheckResult(
                asset=asset,
                check=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                blocking=bool(evaluation.blocking),
                max_psi=_number(evaluation.metadata.get("max_psi")),
            )
        for partition, results in in_run.items():
            for key, result in results.items():
                latest[partition].setdefault(key, result)
    return {m: list(checks.values()) for m, checks in latest.items()}, newest_runs


def _number(entry) -> float | None:
    return None if entry is None else float(entry.value)


def realized_metadata(instance: dg.DagsterInstance, months: list[str]) -> dict[str, dict]:
    """realized_performance's newest materialization metadata per month, as plain values."""
    from dagster._core.storage.event_log.base import AssetRecordsFilter

    found: dict[str, dict] = {}
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=dg.AssetKey(REALIZED_ASSET), asset_partitions=months),
        limit=len(months) * 10,
    ).records
    for record in records:  # newest first
        materialization = record.asset_materialization
        if materialization is not None and materialization.partition not in found:
            found[materialization.partition] = {
                k: v.value for k, v in materialization.metadata.items()
            }
    return found


def open_alerts(
    conn: psycopg.Connection,
    months: list[str],
    checks: dict[str, list[CheckResult]],
    newest_runs: dict[str, dict[str, dg.DagsterRun]],
) -> dict[str, int]:
    """Alerts of the month whose cause still holds: a check alert while the check's latest
    evaluation for the month fails; a run alert while its run is the month's newest of its job."""
    if not conn.execute("select to_regclass('ops.alerts')").fetchone()[0]:
        return {}
    failing = {
        (m, c.asset, c.check) for m, results in checks.items() for c in results if not c.passed
    }
    newest = {run.run_id for runs in newest_runs.values() for run in runs.values()}
    counts: dict[str, int] = {}
    rows = conn.execute(
        "select kind, asset, check_name, partition, run_id from ops.alerts "
        "where partition = any(%s)",
        (months,),
    ).fetchall()
    for kind, asset, check, month, run_id in rows:
        still = (month, asset, check) in failing if kind == CHECK_ALERT else run_id in newest
        if kind in (CHECK_ALERT, RUN_ALERT) and still:
            counts[month] = counts.get(month, 0) + 1
    return counts


def month_health(
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    registry: dict[str, tuple[str, str | None, bool]],
    months: list[str],
) -> list[MonthHealth]:
    """One row per month; `registry` is month -> (version, decision, holds production)."""
    rows = landing_rows(conn, months)
    checks, newest_runs = month_checks(instance, months)
    realized = realized_metadata(instance, months)
    alerts = open_alerts(conn, months, checks, newest_runs)
    health = []
    for month in months:
        landed, rejected = rows.get(month, (None, None))
        version, decision, production = registry.get(month, (None, None, False))
        health.append(
            MonthHealth(
                as_of=month,
                rows_landed=landed,
                rows_rejected=rejected,
                checks=sorted(checks.get(month, []), key=lambda c: c.name),
                model_version=version,
                decision=decision,
                production=production,
                realized=realized.get(month, {}),
                open_alerts=alerts.get(month, 0),
            )
        )
    return health


def registry_months(tracking_uri: str) -> dict[str, tuple[str, str | None, bool]]:
    """Per month: its newest registered version, that version's promotion decision, and
    whether it holds `production` (MLflow's registry tables, or its client on a server)."""
    from ..cli.model_status import read_status_client, read_status_sql
    from ..ml.registry_names import AS_OF_TAG, DECISION_PREFIX, PRODUCTION_ALIAS
    from ..platform.mlflow_store import is_database_uri, libpq_url

    if is_database_uri(tracking_uri):
        try:
            with psycopg.connect(libpq_url(tracking_uri)) as conn:
                status = read_status_sql(conn, latest=ALL_VERSIONS)
        except psycopg.errors.UndefinedTable:  # MLflow never opened this database yet
            return {}
    else:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        status = read_status_client(client, latest=ALL_VERSIONS)
    production = status.aliases.get(PRODUCTION_ALIAS)
    months: dict[str, tuple[str, str | None, bool]] = {}
    for version in status.latest:  # oldest first: the newest version of a month wins
        tags = status.tags.get(version, {})
        if tags.get(AS_OF_TAG):
            decision = tags.get(f"{DECISION_PREFIX}action")
            months[tags[AS_OF_TAG]] = (str(version), decision, version == production)
    return months
