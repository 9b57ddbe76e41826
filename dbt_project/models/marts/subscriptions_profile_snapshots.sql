with

subscriptions as (

    select * from {{ ref('stg_subscriptions') }}
    where {{ partition_filter() }}

),

users as (

    select * from {{ ref('stg_users') }}
    where {{ partition_filter() }}

),

-- Every subscription is kept; a missing users row only leaves the demographics null
-- (reported by a warning test, not dropped).
profile as (

    select
        subscriptions.user_id,
        subscriptions.as_of,
        users.signup_date,
        users.user_gender,
        users.user_is_senior,
        users.has_family,
        users.has_dependents,
        subscriptions.months_active,
        subscriptions.contract_type,
        subscriptions.paperless_billing,
        subscriptions.monthly_fee,
        subscriptions.total_paid,
        subscriptions.net_service,
        subscriptions.plan_stream_tv,
        subscriptions.plan_stream_movies,
        subscriptions.add_on_security,
        subscriptions.add_on_backup,
        subscriptions.add_on_device_protect,
        subscriptions.add_on_support

    from subscriptions
    left join users
        on subscriptions.user_id = users.user_id
        and subscriptions.as_of = users.as_of

)

select
    user_id::text as user_id,
    as_of::date as as_of,
    signup_date::date as signup_date,
    user_gender::text as user_gender,
    user_is_senior::boolean as user_is_senior,
    has_family::boolean as has_family,
    has_dependents::boolean as has_dependents,
    months_active::bigint as months_active,
    contract_type::text as contract_type,
    paperless_billing::boolean as paperless_billing,
    monthly_fee::double precision as monthly_fee,
    total_paid::double precision as total_paid,
    net_service::text as net_service,
    plan_stream_tv::boolean as plan_stream_tv,
    plan_stream_movies::boolean as plan_stream_movies,
    add_on_security::boolean as add_on_security,
    add_on_backup::boolean as add_on_backup,
    add_on_device_protect::boolean as add_on_device_protect,
    add_on_support::boolean as add_on_support

from profile
