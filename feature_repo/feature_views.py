"""Feast feature views: the 14 churn features of DESIGN.md, one view per snapshot mart."""

from datetime import timedelta

from data_sources import (
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
