with

payments as (

    select * from {{ ref('stg_payments_agg_90d') }}
    where {{ partition_filter() }}

)

select
    user_id,
    as_of,
    failed_payments_90d

from payments
