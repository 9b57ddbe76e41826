with

usage as (

    select * from {{ ref('stg_usage_agg_30d') }}
    where {{ partition_filter() }}

)

select
    user_id::text as user_id,
    as_of::date as as_of,
    watch_hours_30d::double precision as watch_hours_30d,
    avg_session_mins_7d::double precision as avg_session_mins_7d,
    unique_devices_30d::bigint as unique_devices_30d,
    skips_7d::bigint as skips_7d,
    rebuffer_events_7d::bigint as rebuffer_events_7d

from usage
