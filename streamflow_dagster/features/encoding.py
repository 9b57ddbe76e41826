"""Feast's PostgreSQL online format, written as SQL expressions (no Dagster, no Feast import).

Feast 0.67's `PostgreSQLOnlineStore.online_write_batch` stores one row per (entity, feature):

    entity_key  bytea  serialize_entity_key(..., entity_key_serialization_version=3)
    value       bytea  the feast.types.Value protobuf, SerializeToString()
    value_text  text   extract_text_and_num(): str() of the Python value, NULL when unset
    event_ts    timestamptz, created_ts timestamptz (NULL without a created column)

A NULL (or NaN) feature is an empty Value (b"", value_text NULL): the online read then returns
None for it. These builders produce the same bytes inside PostgreSQL, so a month is copied from
the marts into the online table without a round trip through Python; the integration tests
compare every column with what Feast's own `materialize` writes.
"""

from __future__ import annotations

import struct

from psycopg import sql

# The entity key format the SQL below builds; feature_store.yaml must ask Feast for the same
# (`check_entity_key_version`), or the online rows we write are keys Feast never looks up.
ENTITY_KEY_VERSION = 3
VALUE_TYPE_STRING = 2  # feast.types.ValueType.STRING, as written in a serialized entity key

# Value protobuf field tags (field number << 3 | wire type) of the scalar types we write.
STRING_TAG = b"\x12"  # string_val = 2, length-delimited
INT32_TAG = b"\x18"  # int32_val = 3, varint
INT64_TAG = b"\x20"  # int64_val = 4, varint
DOUBLE_TAG = b"\x29"  # double_val = 5, 64-bit little endian
BOOL_TAG = b"\x38"  # bool_val = 7, varint

# Python's repr() writes floats in positional notation up to 1e16, PostgreSQL's float8 output
# switches to an exponent at 1e15; values in between are re-printed through numeric.
PG_EXPONENT_FROM = 1e15
PYTHON_EXPONENT_FROM = 1e16


def check_entity_key_version(configured: int, config_file: str) -> None:
    """Stop before any online read or write when Feast is set to another entity key format."""
    if configured != ENTITY_KEY_VERSION:
        raise ValueError(
            f"{config_file}: entity_key_serialization_version is {configured!r}, but StreamFlow's "
            f"online write and read build version {ENTITY_KEY_VERSION} keys "
            "(streamflow_dagster/features/encoding.py), so Feast and StreamFlow would not find "
            f"each other's rows. Set entity_key_serialization_version: {ENTITY_KEY_VERSION} in "
            "that file, or port features/encoding.py to the new format first."
        )


def entity_key_prefix(join_key: str) -> bytes:
    """The bytes before the value's length in a v3 key of one string join key."""
    name = join_key.encode("utf8")
    return (
        struct.pack("<III", 1, VALUE_TYPE_STRING, len(name))
        + name
        + struct.pack("<I", VALUE_TYPE_STRING)
    )


def _bytes(value: bytes) -> sql.Composable:
    return sql.SQL("{}::bytea").format(sql.Literal(value))


def uint32_le(expr: sql.Composable) -> sql.Composable:
    """A non-negative int as 4 little-endian bytes (struct.pack('<I'))."""
    out: sql.Composable = _bytes(b"\x00\x00\x00\x00")
    for index in range(4):
        out = sql.SQL("set_byte({}, {}, (({}) >> {}) & 255)").format(
            out, sql.Literal(index), expr, sql.Literal(8 * index)
        )
    return out


def entity_key(join_key: str, column: sql.Composable) -> sql.Composable:
    """serialize_entity_key() of a one-string-key entity, e.g. user_id."""
    utf8 = sql.SQL("convert_to({}, 'UTF8')").format(column)
    return sql.SQL("{} || {} || {}").format(
        _bytes(entity_key_prefix(join_key)),
        uint32_le(sql.SQL("octet_length({})").format(utf8)),
        utf8,
    )


def varint(expr: sql.Composable) -> sql.Composable:
    """Protobuf varint of a bigint; negatives take 10 bytes (two's complement, as int64)."""
    fast = sql.SQL(
        "CASE WHEN {v} >= 0 AND {v} < 128 THEN set_byte('\\x00'::bytea, 0, {v}::int) "
        "WHEN {v} >= 0 AND {v} < 16384 THEN set_byte(set_byte('\\x0000'::bytea, 0, "
        "(({v} & 127) | 128)::int), 1, ({v} >> 7)::int) ELSE {general} END"
    )
    # Any int64: one byte per 7 bits, bit 8 set on every byte but the last. PostgreSQL's >>
    # sign-extends, so the 10th byte of a negative number keeps only bit 63.
    general = sql.SQL(
        "(SELECT string_agg(set_byte('\\x00'::bytea, 0, ((({v} >> (7 * i)) & "
        "CASE WHEN i = 9 THEN 1 ELSE 127 END) | CASE WHEN i < n.n - 1 THEN 128 ELSE 0 END)::int),"
        " ''::bytea ORDER BY i) FROM (SELECT CASE WHEN {v} < 0 THEN 10 ELSE 1 + (SELECT count(*) "
        "FROM generate_series(1, 9) j WHERE {v} >> (7 * j) > 0)::int END AS n) n, "
        "generate_series(0, n.n - 1) i)"
    ).format(v=expr)
    return fast.format(v=expr, general=general)


def double_le(expr: sql.Composable, has_bytea_reverse: bool) -> sql.Composable:
    """The 8 little-endian IEEE bytes of a float8 (struct.pack('<d'))."""
    big_endian = sql.SQL("float8send({})").format(expr)
    if has_bytea_reverse:  # PostgreSQL 18+
        return sql.SQL("reverse({})").format(big_endian)
    return sql.SQL(" || ").join(
        sql.SQL("substr({}, {}, 1)").format(big_endian, sql.Literal(i)) for i in range(8, 0, -1)
    )


def _unless_null(condition: sql.Composable, value: sql.Composable) -> sql.Composable:
    return sql.SQL("CASE WHEN {} THEN ''::bytea ELSE {} END").format(condition, value)


def value_bytes(value_type: str, column: sql.Composable, has_bytea_reverse: bool):
    """The serialized feast Value of one column, b'' for NULL (and for NaN, as pandas does)."""
    if value_type == "STRING":
        utf8 = sql.SQL("convert_to({}, 'UTF8')").format(column)
        encoded = sql.SQL("{} || {} || {}").format(
            _bytes(STRING_TAG), varint(sql.SQL("octet_length({})::bigint").format(utf8)), utf8
        )
        return _unless_null(sql.SQL("{} IS NULL").format(column), encoded)
    if value_type in ("INT64", "INT32"):
        tag = INT64_TAG if value_type == "INT64" else INT32_TAG
        encoded = sql.SQL("{} || {}").format(
            _bytes(tag), varint(sql.SQL("({})::bigint").format(column))
        )
        return _unless_null(sql.SQL("{} IS NULL").format(column), encoded)
    if value_type == "DOUBLE":
        encoded = sql.SQL("{} || {}").format(
            _bytes(DOUBLE_TAG), double_le(column, has_bytea_reverse)
        )
        return _unless_null(sql.SQL("{c} IS NULL OR {c} = 'NaN'::float8").format(c=column), encoded)
    if value_type == "BOOL":
        return sql.SQL(
            "CASE WHEN {c} IS NULL THEN ''::bytea WHEN {c} THEN {t} ELSE {f} END"
        ).format(c=column, t=_bytes(BOOL_TAG + b"\x01"), f=_bytes(BOOL_TAG + b"\x00"))
    raise NotImplementedError(unsupported_type_message(value_type))


def value_text(value_type: str, column: sql.Composable) -> sql.Composable:
    """str() of the value as Python prints it (value_text), NULL when the value is unset."""
    if value_type == "STRING":
        return column
    if value_type in ("INT64", "INT32"):
        return sql.SQL("{}::text").format(column)
    if value_type == "BOOL":
        return sql.SQL("CASE WHEN {c} THEN 'True' WHEN NOT {c} THEN 'False' END").format(c=column)
    if value_type == "DOUBLE":
        return sql.SQL(
            "CASE WHEN {c} IS NULL OR {c} = 'NaN'::float8 THEN NULL "
            "WHEN {c} = 'Infinity'::float8 THEN 'inf' WHEN {c} = '-Infinity'::float8 THEN '-inf' "
            "WHEN {c} = trunc({c}) AND abs({c}) < {py_exp} THEN "
            "CASE WHEN {c} = 0 AND float8send({c}) <> '\\x0000000000000000'::bytea THEN '-0.0' "
            "ELSE {c}::bigint::text || '.0' END "
            "WHEN abs({c}) >= {pg_exp} AND abs({c}) < {py_exp} THEN {c}::text::numeric::text "
            "ELSE {c}::text END"
        ).format(
            c=column,
            pg_exp=sql.Literal(PG_EXPONENT_FROM),
            py_exp=sql.Literal(PYTHON_EXPONENT_FROM),
        )
    raise NotImplementedError(unsupported_type_message(value_type))


def sql_cast(value_type: str) -> sql.Composable:
    """The PostgreSQL type Feast's declared type is read as (Feast converts the same way)."""
    casts = {
        "STRING": "text",
        "INT64": "bigint",
        "INT32": "integer",
        "DOUBLE": "float8",
        "BOOL": "boolean",
    }
    if value_type not in casts:
        raise NotImplementedError(unsupported_type_message(value_type))
    return sql.SQL(casts[value_type])


def unsupported_type_message(value_type: str) -> str:
    return (
        f"The fast online write supports String, Int32, Int64, Float64 and Bool features, not "
        f"{value_type}; materialize that feature view with `feast materialize` instead."
    )
