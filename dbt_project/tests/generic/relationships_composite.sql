{#
    Fails with the rows of `model` that have no row in `to` with the same values of
    `columns` (e.g. user_id and as_of: the same user in the same month). The built-in
    `relationships` test matches on one column only, which would accept a user who has
    a parent row in some other month.
#}
{% test relationships_composite(model, to, columns) %}

with

child as (
    -- `model` may render as a filtered subquery (the project's partition `where`)
    select * from {{ model }}
),

parent as (
    select * from {{ to }}
)

select
    {%- for column in columns %}
    child.{{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
from child
left join parent
    on {% for column in columns -%}
    child.{{ column }} = parent.{{ column }}{{ ' and ' if not loop.last }}
    {%- endfor %}
where parent.{{ columns[0] }} is null
    and child.{{ columns[0] }} is not null

{% endtest %}
