with

source as (

    select * from {{ source('raw', 'payments_agg_90d') }}

),

renamed as (

    select
        ----------  keys
        user_id::text as user_id,
        as_of::date as as_of,

        ----------  payments
        failed_payments_90d::bigint as failed_payments_90d

    from source

)

select * from renamed
