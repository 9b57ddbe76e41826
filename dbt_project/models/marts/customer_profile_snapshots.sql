with

profile as (

    select * from {{ ref('subscriptions_profile_snapshots') }}
    where {{ partition_filter() }}

),

-- The landing columns churn_v1 leaves out, and three features derived from them, all from
-- the same month's row (as of AS_OF: nothing from a later month).
customer as (

    select
        user_id,
        as_of,
        contract_type,
        add_on_security,
        add_on_backup,
        add_on_device_protect,
        add_on_support,
        user_is_senior,
        has_family,
        has_dependents,
        total_paid,
        (
            add_on_security::int + add_on_backup::int
            + add_on_device_protect::int + add_on_support::int
        )::bigint as add_on_count,
        case
            when months_active > 0 then total_paid / months_active
        end as paid_per_month_active,
        case
            when months_active > 0 then monthly_fee - total_paid / months_active
        end as fee_above_average

    from profile

)

select * from customer
