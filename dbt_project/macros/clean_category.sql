{# Categorical text as landed (' DSL ', 'Month_To_Month') -> its contract value ('dsl'). #}
{% macro clean_category(column) -%}
    lower(trim({{ column }}))
{%- endmacro %}
