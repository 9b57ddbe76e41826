with

source as (

    select * from {{ source('raw', 'subscriptions') }}

),

renamed as (

    select
        ----------  keys
        user_id::text as user_id,
        as_of::date as as_of,

        ----------  plan
        months_active::bigint as months_active,
        contract_type::text as contract_type,
        net_service::text as net_service,
        plan_stream_tv::boolean as plan_stream_tv,
        plan_stream_movies::boolean as plan_stream_movies,

        ----------  add-ons
        add_on_security::boolean as add_on_security,
        add_on_backup::boolean as add_on_backup,
        add_on_device_protect::boolean as add_on_device_protect,
        add_on_support::boolean as add_on_support,

        ----------  billing
        paperless_billing::boolean as paperless_billing,
        monthly_fee::double precision as monthly_fee,
        total_paid::double precision as total_paid

    from source

)

select * from renamed
