with

source as (

    select * from {{ source('raw', 'support_agg_90d') }}

),

renamed as (

    select
        ----------  keys
        user_id::text as user_id,
        as_of::date as as_of,

        ----------  support
        support_tickets_90d::bigint as support_tickets_90d,
        ticket_avg_resolution_hrs_90d::double precision as ticket_avg_resolution_hrs_90d

    from source

)

select * from renamed
