{#
    One month-end AS_OF from var `name` (ISO date, last day of a month), or none when unset.
    Validated here because it is rendered into SQL.
#}
{% macro _as_of_var(name) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string | trim -%}
    {%- set parts = modules.re.fullmatch('([0-9]{4})-([0-9]{2})-([0-9]{2})', text) -%}
    {%- set year = parts.group(1) | int if parts else 0 -%}
    {%- set month = parts.group(2) | int if parts else 0 -%}
    {%- if not parts or month < 1 or month > 12 -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be an ISO date like 2024-01-31, got '" ~ text ~ "'") }}
    {%- endif -%}
    {%- set next_month = modules.datetime.date(year + month // 12, month % 12 + 1, 1) -%}
    {%- set month_end = next_month - modules.datetime.timedelta(days=1) -%}
    {%- if text != month_end.isoformat() -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be the last day of a month (the month's AS_OF, e.g. "
            ~ month_end.isoformat() ~ "), got " ~ text) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}


{#
    The months being built, [first AS_OF, last AS_OF] inclusive, or none for all months:
    vars `as_of_from` and `as_of_to` (a range of months, one dbt invocation), or `as_of`
    alone (one month). A range builds exactly what one build per month builds: every model
    and test reads rows month by month, never across months.
#}
{% macro partition_range() -%}
    {%- set one = _as_of_var('as_of') -%}
    {%- set first = _as_of_var('as_of_from') -%}
    {%- set last = _as_of_var('as_of_to') -%}
    {%- if one is not none and (first is not none or last is not none) -%}
        {{ exceptions.raise_compiler_error(
            "give either var as_of (one month) or vars as_of_from and as_of_to (a range), not both") }}
    {%- endif -%}
    {%- if (first is none) != (last is none) -%}
        {{ exceptions.raise_compiler_error(
            "vars as_of_from and as_of_to go together: give both (the range's first and last AS_OF)") }}
    {%- endif -%}
    {%- if first is not none and first > last -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_from " ~ first ~ " is after as_of_to " ~ last ~ ": write the earlier month first") }}
    {%- endif -%}
    {%- if one is not none -%}
        {{ return([one, one]) }}
    {%- elif first is not none -%}
        {{ return([first, last]) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}


{# SQL predicate on `column` for the months being built; `true` for all months. #}
{% macro partition_filter(column='as_of') -%}
    {%- set bounds = partition_range() -%}
    {%- if bounds is none -%}
        true
    {%- elif bounds[0] == bounds[1] -%}
        {{ column }} = '{{ bounds[0] }}'::date
    {%- else -%}
        {{ column }} between '{{ bounds[0] }}'::date and '{{ bounds[1] }}'::date
    {%- endif -%}
{%- endmacro %}


{#
    Pre-hook of the incremental marts: deletes the months being built, in the same
    transaction as the insert. delete+insert alone only deletes the months present in
    the new rows, so a month that became empty upstream would keep its old rows.
    Refuses a full refresh of some months, which would drop every other month.
#}
{% macro delete_partition() -%}
    {%- set bounds = partition_range() -%}
    {%- if bounds is not none and should_full_refresh() -%}
        {{ exceptions.raise_compiler_error(
            "A full refresh rebuilds every month and would keep only " ~ bounds[0] ~ ".." ~ bounds[1]
            ~ ": run `dbt build --full-refresh` without vars as_of / as_of_from / as_of_to.") }}
    {%- endif -%}
    {%- if bounds is not none and is_incremental() -%}
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
