"""Feast batch sources: one per dbt snapshot mart (one row per user_id and as_of)."""

from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)

MARTS_SCHEMA = "marts"


def snapshot_source(dbt_model: str, description: str) -> PostgreSQLSource:
    """A monthly snapshot mart, read as it is; `as_of` (the month's last day) is event time."""
    return PostgreSQLSource(
        name=dbt_model,
        table=f"{MARTS_SCHEMA}.{dbt_model}",
        timestamp_field="as_of",
        description=description,
        tags={"dbt_model": dbt_model, "dbt_schema": MARTS_SCHEMA},
    )


subscriptions_profile_source = snapshot_source(
    "subscriptions_profile_snapshots", "Plan, contract and billing of each user at month end."
)
usage_agg_30d_source = snapshot_source(
    "usage_agg_30d_snapshots", "Watching and streaming-quality aggregates (30 and 7 days)."
)
payments_agg_90d_source = snapshot_source(
    "payments_agg_90d_snapshots", "Failed payments over the 90 days before month end."
)
support_agg_90d_source = snapshot_source(
    "support_agg_90d_snapshots", "Support tickets over the 90 days before month end."
)
customer_profile_source = snapshot_source(
    "customer_profile_snapshots",
    "Contract, add-ons, customer attributes and billing history at month end (churn_v2).",
)
