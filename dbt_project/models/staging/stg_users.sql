with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select
        ----------  keys
        user_id::text as user_id,
        as_of::date as as_of,

        ----------  demographics
        signup_date::date as signup_date,
        user_gender::text as user_gender,
        user_is_senior::boolean as user_is_senior,
        has_family::boolean as has_family,
        has_dependents::boolean as has_dependents

    from source

)

select * from renamed
