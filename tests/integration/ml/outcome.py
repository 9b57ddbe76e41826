"""What one way of running months produced, comparable across databases and registries.

Versions are named by their month: their numbers follow the order in which they were
registered, which is exactly what differs between orders of running the months.
"""

from __future__ import annotations

import psycopg

from streamflow_dagster.ml.registry import (
    PREVIOUS_ALIAS,
    PRODUCTION_ALIAS,
    alias_version,
    all_versions,
)
from streamflow_dagster.platform.mlflow_store import MlflowStore, mlflow_client
from tests.integration.helpers import table_checksum

SCORES_QUERY = (
    "select count(*), coalesce(md5(string_agg((user_id, as_of, churn_probability, prediction)"
    "::text, '|' order by user_id)), ''), array_agg(distinct model_version) "
    "from scores.churn_scores where as_of = %s"
)


def model_outcome(url: str, store: MlflowStore, months: list[str]) -> dict:
    """Training sets and scores per month, each month's model and decision, the aliases."""
    client = mlflow_client(store)
    versions = sorted(all_versions(client), key=lambda v: int(v.version))
    month_of = {int(v.version): v.tags["as_of"] for v in versions}
    newest = {v.tags["as_of"]: v for v in versions}
    with psycopg.connect(url) as conn:
        training = {
            m: table_checksum(conn, "features", "training_set", "as_of = %s", (m,)) for m in months
        }
        scores = {}
        for m in months:
            rows, digest, by = conn.execute(SCORES_QUERY, (m,)).fetchone()
            scores[m] = (rows, digest, sorted(month_of[v] for v in by or []))
    chain = {}
    for month, version in newest.items():
        tags = version.tags
        champion = tags.get("decision.champion_version", "")
        metrics = client.get_run(version.run_id).data.metrics
        chain[month] = {
            "checks": tags["checks"],
            "action": tags.get("decision.action"),
            "champion": month_of.get(int(champion)) if champion.isdigit() else champion,
            "aucs": (tags.get("decision.challenger_auc"), tags.get("decision.champion_auc")),
            "metrics": {k: v for k, v in metrics.items() if "seconds" not in k},
        }
    aliases = {}
    for alias in (PRODUCTION_ALIAS, PREVIOUS_ALIAS):
        holder = alias_version(client, alias)
        aliases[alias] = holder.tags["as_of"] if holder else None
    return {"training_sets": training, "scores": scores, "chain": chain, "aliases": aliases}
