{#
    Fails when `model` has no rows for a month being built (under the project's partition
    `where`): one row per empty month of the range (var as_of, or as_of_from..as_of_to), so
    a range build fails on exactly the months a build per month would fail on. Without
    partition vars (a full build), fails when the model has no rows at all.
#}
{% test not_empty(model) %}

{%- set bounds = partition_range() -%}
{%- if bounds is none %}

select 'no rows' as problem
where not exists (select 1 from {{ model }})

{%- else %}

with months as (

    select (month_start + interval '1 month' - interval '1 day')::date as as_of
    from generate_series(
        date_trunc('month', '{{ bounds[0] }}'::date),
        date_trunc('month', '{{ bounds[1] }}'::date),
        interval '1 month'
    ) as month_start

)

select months.as_of, 'no rows' as problem
from months
where not exists (select 1 from {{ model }} where as_of = months.as_of)

{%- endif %}

{% endtest %}
