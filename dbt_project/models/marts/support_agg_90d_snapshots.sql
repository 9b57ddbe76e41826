with

support as (

    select * from {{ ref('stg_support_agg_90d') }}
    where {{ partition_filter() }}

)

select
    user_id,
    as_of,
    support_tickets_90d,
    ticket_avg_resolution_hrs_90d

from support
