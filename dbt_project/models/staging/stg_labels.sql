with

source as (

    select * from {{ source('raw', 'labels') }}

),

renamed as (

    select
        ----------  keys
        user_id::text as user_id,
        as_of::date as as_of,

        ----------  target
        churn_label::boolean as churn_label

    from source

)

select * from renamed
