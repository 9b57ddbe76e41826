"""`streamflow model status`: who holds `production` and `previous`, and the latest versions.

Importing MLflow's client costs seconds (it loads pandas and most of MLflow), most of what the
command would take. With the registry in PostgreSQL (the default, or an MLFLOW_TRACKING_URI
that is a database), the status is therefore one read-only query of MLflow's registry tables
(`registered_model_aliases`, `model_versions`, `model_version_tags`, MLflow's SQL schema since
2.3; tests/integration/cli compares the result with MlflowClient's). With a tracking server
(an http URI) MlflowClient reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ml.registry_names import (
    AS_OF_TAG,
    CHECKS_TAG,
    DECISION_PREFIX,
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    REGISTERED_MODEL,
)

ALIASES = (PRODUCTION_ALIAS, PREVIOUS_ALIAS)
LATEST_VERSIONS = 12  # rows of the table: a year of monthly versions
AUC_METRIC = "auc"  # the run's holdout AUC, as the run summary and the UI show it
HOLDOUT_AUC_TAG = "holdout_auc"  # the same with 6 decimals, on the version (the fallback)
# MLflow's soft-deleted versions keep their row with this stage.
_DELETED_STAGE = "Deleted_Internal"


@dataclass(frozen=True)
class RegistryStatus:
    aliases: dict[str, int | None]  # alias -> version
    tags: dict[int, dict[str, str]]  # version -> tags, for the latest versions and the aliased
    latest: list[int]  # the latest versions, oldest first
    auc: dict[int, float]  # version -> its run's `auc` metric (the holdout AUC), when logged


def read_status_sql(conn, latest: int = LATEST_VERSIONS) -> RegistryStatus:
    """The status from MLflow's registry tables (a psycopg connection to its database)."""
    aliases = dict.fromkeys(ALIASES)
    rows = conn.execute(
        "select alias, version from registered_model_aliases where name = %s and alias = any(%s)",
        (REGISTERED_MODEL, list(ALIASES)),
    ).fetchall()
    aliases.update({alias: int(version) for alias, version in rows})
    newest = conn.execute(
        "select version from model_versions where name = %s and current_stage <> %s "
        "order by version desc limit %s",
        (REGISTERED_MODEL, _DELETED_STAGE, latest),
    ).fetchall()
    versions = sorted(int(version) for (version,) in newest)
    wanted = sorted({*versions, *(v for v in aliases.values() if v is not None)})
    tags: dict[int, dict[str, str]] = {version: {} for version in wanted}
    for version, key, value in conn.execute(
        "select version, key, value from model_version_tags where name = %s and version = any(%s)",
        (REGISTERED_MODEL, wanted),
    ):
        tags[int(version)][key] = value
    auc = conn.execute(
        "select v.version, m.value from model_versions v join latest_metrics m "
        "on m.run_uuid = v.run_id and m.key = %s where v.name = %s and v.version = any(%s)",
        (AUC_METRIC, REGISTERED_MODEL, versions),
    ).fetchall()
    return RegistryStatus(aliases, tags, versions, {int(v): float(value) for v, value in auc})


def read_status_client(client, latest: int = LATEST_VERSIONS) -> RegistryStatus:
    """The same status through MlflowClient (a tracking server, or to check the SQL path)."""
    from ..ml.registry import alias_version, all_versions

    aliases, tags = {}, {}
    for alias in ALIASES:
        version = alias_version(client, alias)
        aliases[alias] = int(version.version) if version else None
        if version:
            tags[int(version.version)] = dict(version.tags)
    newest = sorted(all_versions(client), key=lambda v: int(v.version))[-latest:]
    auc = {}
    for version in newest:
        tags[int(version.version)] = dict(version.tags)
        if version.run_id:
            value = client.get_run(version.run_id).data.metrics.get(AUC_METRIC)
            if value is not None:
                auc[int(version.version)] = float(value)
    return RegistryStatus(aliases, tags, [int(v.version) for v in newest], auc)


def format_auc(metric: float | None, tag: str | None = None) -> str:
    """The holdout AUC rounded to 4 decimals like everywhere else (0.87336 -> 0.8734, never
    cut to 0.8733): the run's metric, else the version's 6-decimal tag."""
    try:
        return f"{float(metric if metric is not None else tag):.4f}"
    except (TypeError, ValueError):
        return "?"


def render_status(status: RegistryStatus) -> list[str]:
    """The lines the command prints: the aliases, then a table with a header row."""
    lines = []
    for alias, version in status.aliases.items():
        if version is None:
            lines.append(f"{alias:<11} none")
        else:
            as_of = status.tags.get(version, {}).get(AS_OF_TAG, "?")
            lines.append(f"{alias:<11} v{version} ({as_of})")
    if not status.latest:
        lines.append(f"No version of {REGISTERED_MODEL} registered yet: run `streamflow demo`.")
        return lines
    lines.append("")
    lines.append(f"{'version':<8} {'as_of':<11} {'holdout AUC':<11} {'checks':<8} decision")
    for version in status.latest:
        tags = status.tags.get(version, {})
        decision = " ".join(
            part
            for part in (
                tags.get(f"{DECISION_PREFIX}action", ""),
                tags.get(f"{DECISION_PREFIX}reason", ""),
            )
            if part
        )
        auc = format_auc(status.auc.get(version), tags.get(HOLDOUT_AUC_TAG))
        lines.append(
            f"{'v' + str(version):<8} {tags.get(AS_OF_TAG, '?'):<11} {auc:<11} "
            f"{tags.get(CHECKS_TAG, '?'):<8} {decision}".rstrip()
        )
    return lines
