with

labels as (

    select * from {{ ref('stg_labels') }}
    where {{ partition_filter() }}

)

select
    user_id,
    as_of,
    churn_label

from labels
