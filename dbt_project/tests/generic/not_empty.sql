{#
    Fails (one row) when `model` has no rows, i.e. when the month being built (under the
    project's partition `where`) produced nothing.
#}
{% test not_empty(model) %}

select 'no rows' as problem
where not exists (select 1 from {{ model }})

{% endtest %}
