with

usage as (

    select * from {{ ref('stg_usage_agg_30d') }}
    where {{ partition_filter() }}

)

select
    user_id,
    as_of,
    watch_hours_30d,
    avg_session_mins_7d,
    unique_devices_30d,
    skips_7d,
    rebuffer_events_7d

from usage
