"""Feast feature views: the 14 churn features of DESIGN.md in four views, one per snapshot mart,
and the challenger's customer profile (customer_profile_fv, read only by churn_v2)."""

from datetime import timedelta

from data_sources import (
    customer_profile_source,
    payments_agg_90d_source,
    subscriptions_profile_source,
    support_agg_90d_source,
    usage_agg_30d_source,
)
from entities import user
from feast import FeatureView, Field
from feast.types import Bool, Float64, Int64, String

# A snapshot is valid for 27 days. Month ends are at least 28 days apart (Jan 31 -> Feb 28),
# so a point-in-time lookup at AS_OF M finds month M's row or nothing: a user missing from
# month M never inherits month M-1's values. A lookup inside a month (before its own snapshot
# exists) still sees the previous month end, as long as that is at most 27 days old.
SNAPSHOT_TTL = timedelta(days=27)

subs_profile_fv = FeatureView(
    name="subs_profile_fv",
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=[
        Field(name="net_service", dtype=String),
        Field(name="paperless_billing", dtype=Bool),
        Field(name="plan_stream_movies", dtype=Bool),
        Field(name="plan_stream_tv", dtype=Bool),
        Field(name="months_active", dtype=Int64),
        Field(name="monthly_fee", dtype=Float64),
    ],
    source=subscriptions_profile_source,
    online=True,
    description="Plan, add-ons and billing at month end.",
    tags={"dbt_model": "subscriptions_profile_snapshots"},
)

usage_agg_30d_fv = FeatureView(
    name="usage_agg_30d_fv",
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=[
        Field(name="rebuffer_events_7d", dtype=Int64),
        Field(name="unique_devices_30d", dtype=Int64),
        Field(name="watch_hours_30d", dtype=Float64),
        Field(name="skips_7d", dtype=Int64),
        Field(name="avg_session_mins_7d", dtype=Float64),
    ],
    source=usage_agg_30d_source,
    online=True,
    description="Engagement and streaming quality over the last 30 and 7 days.",
    tags={"dbt_model": "usage_agg_30d_snapshots"},
)

payments_agg_90d_fv = FeatureView(
    name="payments_agg_90d_fv",
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=[Field(name="failed_payments_90d", dtype=Int64)],
    source=payments_agg_90d_source,
    online=True,
    description="Failed payments over the last 90 days.",
    tags={"dbt_model": "payments_agg_90d_snapshots"},
)

support_agg_90d_fv = FeatureView(
    name="support_agg_90d_fv",
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=[
        Field(name="support_tickets_90d", dtype=Int64),
        Field(name="ticket_avg_resolution_hrs_90d", dtype=Float64),
    ],
    source=support_agg_90d_source,
    online=True,
    description="Support tickets and their resolution time over the last 90 days.",
    tags={"dbt_model": "support_agg_90d_snapshots"},
)

# The landing columns churn_v1 leaves out and three derived features (the dbt mart's docs say
# why each). Not user_gender: it carries no churn signal in Telco (holdout AUC unchanged) and
# a retention offer should not depend on it; the model card reports metrics per gender instead.
customer_profile_fv = FeatureView(
    name="customer_profile_fv",
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=[
        Field(name="contract_type", dtype=String),
        Field(name="add_on_security", dtype=Bool),
        Field(name="add_on_backup", dtype=Bool),
        Field(name="add_on_device_protect", dtype=Bool),
        Field(name="add_on_support", dtype=Bool),
        Field(name="user_is_senior", dtype=Bool),
        Field(name="has_family", dtype=Bool),
        Field(name="has_dependents", dtype=Bool),
        Field(name="total_paid", dtype=Float64),
        Field(name="add_on_count", dtype=Int64),
        Field(name="paid_per_month_active", dtype=Float64),
        Field(name="fee_above_average", dtype=Float64),
    ],
    source=customer_profile_source,
    online=True,
    description="Contract, add-ons, customer attributes and charges per month of tenure.",
    tags={"dbt_model": "customer_profile_snapshots"},
)
