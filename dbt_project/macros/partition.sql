{#
    The month being built: var `as_of` (ISO date, last day of a month), or none for a
    build of all months. Validated here because it is rendered into SQL.
#}
{% macro partition_as_of() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string | trim -%}
    {%- set parts = modules.re.fullmatch('([0-9]{4})-([0-9]{2})-([0-9]{2})', text) -%}
    {%- set year = parts.group(1) | int if parts else 0 -%}
    {%- set month = parts.group(2) | int if parts else 0 -%}
    {%- if not parts or month < 1 or month > 12 -%}
        {{ exceptions.raise_compiler_error(
            "var as_of must be an ISO date like 2024-01-31, got '" ~ text ~ "'") }}
    {%- endif -%}
    {%- set next_month = modules.datetime.date(year + month // 12, month % 12 + 1, 1) -%}
    {%- set month_end = next_month - modules.datetime.timedelta(days=1) -%}
    {%- if text != month_end.isoformat() -%}
        {{ exceptions.raise_compiler_error(
            "var as_of must be the last day of a month (the month's AS_OF, e.g. "
            ~ month_end.isoformat() ~ "), got " ~ text) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}


{# SQL predicate on `column` for the month being built; `true` for all months. #}
{% macro partition_filter(column='as_of') -%}
    {%- set as_of = partition_as_of() -%}
    {%- if as_of is none -%}
        true
    {%- else -%}
        {{ column }} = '{{ as_of }}'::date
    {%- endif -%}
{%- endmacro %}


{#
    Pre-hook of the incremental marts: deletes the month being built, in the same
    transaction as the insert. delete+insert alone only deletes the months present in
    the new rows, so a month that became empty upstream would keep its old rows.
    Refuses a full refresh of one month, which would drop every other month.
#}
{% macro delete_partition() -%}
    {%- set as_of = partition_as_of() -%}
    {%- if as_of is not none and should_full_refresh() -%}
        {{ exceptions.raise_compiler_error(
            "A full refresh rebuilds every month and would keep only " ~ as_of
            ~ ": run `dbt build --full-refresh` without var as_of.") }}
    {%- endif -%}
    {%- if as_of is not none and is_incremental() -%}
        delete from {{ this }} where {{ partition_filter() }}
    {%- endif -%}
{%- endmacro %}


{#
    Post-hook of the marts: point-in-time reads (Feast) filter by as_of and join by
    user_id. Unique, so a duplicated key fails the build instead of landing.
#}
{% macro create_as_of_user_id_index() -%}
    create unique index if not exists {{ this.identifier }}_as_of_user_id_idx
        on {{ this }} (as_of, user_id)
{%- endmacro %}
