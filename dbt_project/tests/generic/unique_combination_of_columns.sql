{#
    Fails with one row per combination of `combination_of_columns` that occurs more than
    once, e.g. the (user_id, as_of) grain of a snapshot.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{%- set columns_csv = combination_of_columns | join(', ') %}

select
    {{ columns_csv }},
    count(*) as n_records
from {{ model }}
group by {{ columns_csv }}
having count(*) > 1

{% endtest %}
