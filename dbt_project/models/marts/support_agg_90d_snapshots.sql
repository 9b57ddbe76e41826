with

support as (

    select * from {{ ref('stg_support_agg_90d') }}
    where {{ partition_filter() }}

)

select
    user_id::text as user_id,
    as_of::date as as_of,
    support_tickets_90d::bigint as support_tickets_90d,
    ticket_avg_resolution_hrs_90d::double precision as ticket_avg_resolution_hrs_90d

from support
