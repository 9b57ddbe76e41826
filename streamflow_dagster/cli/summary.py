"""What a person reads at the end of `streamflow demo` / `streamflow run`."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ..landing.contract import LANDING_TABLES, QUARANTINE_TABLE, RAW_SCHEMA
from .runner import MonthRun

MART_TABLES = (
    "subscriptions_profile_snapshots",
    "usage_agg_30d_snapshots",
    "payments_agg_90d_snapshots",
    "support_agg_90d_snapshots",
    "churn_labels",
)
MARTS_SCHEMA = "marts"


def month_counts(conn: psycopg.Connection, months: list[str]) -> dict[str, dict[str, int]]:
    """Rows per month: raw users loaded, quarantined rows, and each mart's rows."""
    counts: dict[str, dict[str, int]] = {m: {} for m in months}
    queries = {
        "raw users": sql.Identifier(RAW_SCHEMA, "users"),
        "quarantined": sql.Identifier(RAW_SCHEMA, QUARANTINE_TABLE),
    }
    queries.update({m: sql.Identifier(MARTS_SCHEMA, m) for m in MART_TABLES})
    for label, table in queries.items():
        exists = conn.execute("select to_regclass(%s)", (table.as_string(conn),)).fetchone()[0]
        rows = (
            conn.execute(
                sql.SQL(
                    "select as_of::text, count(*) from {} where as_of::text = any(%s) group by 1"
                ).format(table),
                (months,),
            ).fetchall()
            if exists
            else []
        )
        for as_of, n in rows:
            counts[as_of][label] = n
    return counts


def model_summary(tracking_uri: str) -> tuple[dict[str, tuple[str, float | None]], str | None]:
    """Per AS_OF: (newest registered version, its holdout AUC); and the Production version."""
    from mlflow import MlflowClient

    from ..ml.registry import AS_OF_TAG, PRODUCTION_ALIAS, alias_version, all_versions

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    per_month: dict[str, tuple[str, float | None]] = {}
    for version in sorted(all_versions(client), key=lambda v: int(v.version)):
        as_of = version.tags.get(AS_OF_TAG)
        if as_of:
            auc = client.get_run(version.run_id).data.metrics.get("auc")
            per_month[as_of] = (version.version, auc)
    production = alias_version(client, PRODUCTION_ALIAS)
    return per_month, production.version if production else None


def render(
    runs: list[MonthRun],
    counts: dict[str, dict[str, int]],
    *,
    home: str,
    elapsed_s: float,
    models: dict[str, tuple[str, float | None]] | None = None,
    production: str | None = None,
) -> str:
    ok = sum(r.success for r in runs)
    flagged = sum(r.flagged for r in runs)
    lines = [
        "",
        f"StreamFlow: {ok} of {len(runs)} month(s) materialized in {elapsed_s:.0f} s"
        + (f"; {flagged} flagged by a blocking check (red in the UI)" if flagged else ""),
        "",
        f"  {'AS_OF':<12}{'status':<8}{'users':>9}{'rejected':>10}{'profile':>9}"
        f"{'usage':>8}{'labels':>8}{'model':>7}{'AUC':>7}{'sec':>7}",
    ]
    models = models or {}
    for run in runs:
        c = counts.get(run.as_of, {})
        lines.append(
            f"  {run.as_of:<12}{run.status:<8}"
            f"{c.get('raw users', 0):>9}{c.get('quarantined', 0):>10}"
            f"{c.get('subscriptions_profile_snapshots', 0):>9}"
            f"{c.get('usage_agg_30d_snapshots', 0):>8}{c.get('churn_labels', 0):>8}"
            f"{_model_cells(models.get(run.as_of))}{run.seconds:>7.1f}"
        )
    lines.append("")
    lines.append(
        f"  Production model: streamflow_churn version {production} "
        "(models:/streamflow_churn@production)"
        if production
        else "  Production model: none yet (no month had labels and passed its checks)"
    )
    failed = [r for r in runs if not r.success or r.failed_checks or r.notes]
    for run in failed:
        for line in run.failures + [f"check failed: {c}" for c in run.failed_checks] + run.notes:
            lines.append(f"  ! {run.as_of} {line}")
    lines += [
        "",
        "Where to look next:",
        "  streamflow status             every month's health: rows, failed checks, drift, model,"
        " realized AUC, calibration, open alerts (the UI: asset platform_health)",
        "  make dev                      the Dagster UI on http://127.0.0.1:3000 (lineage, runs,"
        " checks)",
        "  streamflow docs               the dbt docs (models, columns, tests)",
        "  streamflow db url             psql into the warehouse (schemas raw, staging, marts)",
        "  streamflow model ui           the MLflow UI (runs, plots, registry, aliases)",
        "  streamflow serve              the online API: /predict/{user_id}, docs on /docs",
        f"  state folder                  {home}",
        f"  rejected rows                 {RAW_SCHEMA}.{QUARANTINE_TABLE} (table_name, as_of,"
        " line_number, raw_record, reason)",
        f"  landing tables                {', '.join(t.file for t in LANDING_TABLES)}",
    ]
    return "\n".join(lines)


def _model_cells(model: tuple[str | int, float | None] | None) -> str:
    if model is None:
        return f"{'-':>7}{'-':>7}"
    version, auc = model
    return f"{'v' + str(version):>7}{(f'{auc:.3f}' if auc is not None else '-'):>7}"
