with

labels as (

    select * from {{ ref('stg_labels') }}
    where {{ partition_filter() }}

)

select
    user_id::text as user_id,
    as_of::date as as_of,
    churn_label::boolean as churn_label

from labels
