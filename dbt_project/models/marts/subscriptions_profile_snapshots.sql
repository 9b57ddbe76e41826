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

select * from profile
