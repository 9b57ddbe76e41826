"""Parse and validate one landing file against the contract. Pure: no database, no Dagster.

Every data row either comes out typed in `ParsedFile.accepted` or goes to
`ParsedFile.rejections` with its line number, the raw record and a reason naming the
column and the value; nothing is dropped or coerced silently. Whole-file problems that
leave nothing to load row by row (not UTF-8, duplicate header names) raise
`LandingFileError`, so the month is not touched at all.

Parsing and the checks run in Arrow (C++), so a million-row file takes seconds; Python
only builds the reason strings of the rows that fail. Line numbers are physical lines
(header = 1); a quoted field spanning lines is not part of the contract and is rejected.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from .contract import (
    FALSE_WORDS,
    SEPARATORS_PATTERN,
    TRUE_WORDS,
    Column,
    Kind,
    LandingTable,
    Vocabulary,
)

REJECTION_COLUMNS = ["line_number", "raw_record", "reason"]
_INT_PATTERN = r"^[+-]?\d{1,18}$"  # 18 digits always fit PostgreSQL's bigint
_ANY_INT_PATTERN = r"^[+-]?\d+$"
_NUM_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_ARROW_TYPES = {
    Kind.INT: pa.int64(),
    Kind.NUM: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.DATE: pa.date32(),
    Kind.TEXT: pa.string(),
}


class LandingFileError(ValueError):
    """A landing file that cannot be read at all; the message says which and where."""


@dataclass
class ParsedFile:
    table: LandingTable
    path: Path
    accepted: pa.Table  # typed, contract columns in contract order
    rejections: pd.DataFrame  # line_number, raw_record, reason
    rows_read: int  # data records found (accepted + rejected)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    no_records: str | None = None  # why the file holds no record at all (empty, header only)

    @property
    def reject_rate(self) -> float:
        return len(self.rejections) / self.rows_read if self.rows_read else 0.0


class _Reasons:
    """Reasons per row index, collected only for the rows that fail."""

    def __init__(self) -> None:
        self.by_row: dict[int, list[str]] = defaultdict(list)

    def add(self, rows: np.ndarray, reasons: list[str] | str) -> None:
        if isinstance(reasons, str):
            reasons = [reasons] * len(rows)
        for row, reason in zip(rows.tolist(), reasons, strict=True):
            self.by_row[row].append(reason)

    def failing(self) -> np.ndarray:
        return np.fromiter(self.by_row, dtype=np.int64, count=len(self.by_row))


def _record_text(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def _read_header(path: Path) -> list[str] | None:
    with open(path, encoding="utf-8-sig", newline="", errors="replace") as fh:
        return next(csv.reader(fh), None)


def _file_error(path: Path, err: Exception) -> LandingFileError:
    """Why Arrow could not read the file: bad UTF-8 (with its line and byte) or else."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return LandingFileError(
            f"{path}, line {line}: not valid UTF-8 at byte {err.start} ({err.reason}); "
            "re-export the file as UTF-8"
        )
    return LandingFileError(f"{path}: malformed CSV ({err})")


def _read_table(path: Path, names: list[str]) -> tuple[pa.Table, list[tuple[int, str, int]]]:
    """All fields as strings, plus (line, text, field count) of rows of the wrong width."""
    ragged: list[tuple[int, str, int]] = []

    def on_ragged(row) -> str:
        ragged.append((row.number, row.text, row.actual_columns))
        return "skip"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(
                use_threads=False, skip_rows=1, column_names=names, block_size=1 << 24
            ),
            parse_options=pa_csv.ParseOptions(
                invalid_row_handler=on_ragged, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as err:
        raise _file_error(path, err) from err
    return table, ragged  # Arrow's row numbers are physical lines, the header being 1


def parse_landing_file(path: Path, table: LandingTable) -> ParsedFile:
    header = _read_header(path)
    if header is None:
        empty = f"{table.file} is empty: expected a header row with {table.column_names}"
        rejections = pd.DataFrame([(1, "", empty)], columns=REJECTION_COLUMNS)
        return ParsedFile(
            table,
            path,
            _empty_typed(table),
            rejections,
            rows_read=1,
            missing_columns=table.column_names,
            no_records=empty,
        )

    names = [h.strip() for h in header]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise LandingFileError(f"{path}, line 1: header repeats column(s) {duplicated}")
    missing = [c for c in table.column_names if c not in names]
    extra = [n for n in names if n not in table.column_names]

    fields, ragged = _read_table(path, names)
    # Physical line of every parsed row: all lines after the header but the ragged ones.
    total = fields.num_rows + len(ragged)
    ragged_lines = np.array([r[0] for r in ragged], dtype=np.int64)
    lines = np.setdiff1d(np.arange(2, total + 2, dtype=np.int64), ragged_lines)

    blank = _all_blank(fields)  # a blank line holds no record
    if blank.any():
        fields, lines = fields.filter(pa.array(~blank)), lines[~blank]

    rows_read = fields.num_rows + len(ragged)
    if rows_read == 0:
        header_only = f"{table.file} has a header but no data rows"
        rejections = pd.DataFrame(
            [(1, _record_text(header), header_only)], columns=REJECTION_COLUMNS
        )
        return ParsedFile(
            table, path, _empty_typed(table), rejections, 1, missing, extra, header_only
        )

    reasons = _Reasons()
    if missing:
        reasons.add(np.arange(fields.num_rows), f"missing required column(s): {', '.join(missing)}")
    typed: dict[str, pa.Array] = {}
    for column in table.columns:
        if column.name in names:
            typed[column.name] = _check_column(column, fields.column(column.name), reasons)
    if not missing:
        _flag_duplicates(fields, table, lines, reasons)

    failing = reasons.failing()
    rejected = [
        (
            int(lines[i]),
            _record_text([fields.column(n)[i].as_py() for n in names]),
            "; ".join(reasons.by_row[i]),
        )
        for i in failing.tolist()
    ]
    width = len(names)
    rejected += [
        (
            line,
            text,
            f"expected {width} fields as in the header, found {count}"
            + (" (truncated line?)" if count < width else ""),
        )
        for line, text, count in ragged
    ]
    rejections = pd.DataFrame(sorted(rejected), columns=REJECTION_COLUMNS)

    if missing:
        accepted = _empty_typed(table)
    else:
        keep = np.ones(fields.num_rows, dtype=bool)
        keep[failing] = False
        accepted = pa.table({c.name: typed[c.name] for c in table.columns}).filter(pa.array(keep))
    return ParsedFile(table, path, accepted, rejections, rows_read, missing, extra)


def _all_blank(fields: pa.Table) -> np.ndarray:
    blank = None
    for column in fields.columns:
        empty = pc.equal(column, "")
        blank = empty if blank is None else pc.and_(blank, empty)
    return _np_mask(blank)


def _np_mask(mask) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _check_column(column: Column, raw_field: pa.ChunkedArray, reasons: _Reasons) -> pa.Array:
    """Typed values of one column; rows that break the contract get a reason naming it."""
    raw = pc.utf8_trim_whitespace(raw_field)
    blank = _np_mask(pc.equal(raw, ""))
    flagged = np.zeros(len(raw), dtype=bool)
    name = column.name

    def flag(mask: np.ndarray, what: str) -> None:
        mask = mask & ~flagged
        rows = np.flatnonzero(mask)
        if len(rows):
            values = raw.take(pa.array(rows)).to_pylist()
            reasons.add(rows, [f"{name}: {v!r} {what}" for v in values])
            flagged[rows] = True

    if not column.nullable:
        rows = np.flatnonzero(blank)
        if len(rows):
            reasons.add(rows, f"{name}: blank but required")
            flagged[rows] = True
    filled = ~blank

    if column.kind is Kind.INT:
        ok = _np_mask(pc.match_substring_regex(raw, _INT_PATTERN))
        flag(
            filled & ~ok & _np_mask(pc.match_substring_regex(raw, _ANY_INT_PATTERN)),
            "is out of range for an integer",
        )
        flag(filled & ~ok, "is not an integer")
        values = pc.cast(pc.if_else(pa.array(ok & filled), raw, None), pa.int64())
    elif column.kind is Kind.NUM:
        ok = _np_mask(pc.match_substring_regex(raw, _NUM_PATTERN))
        flag(filled & ~ok, "is not a number")
        values = pc.cast(pc.if_else(pa.array(ok & filled), raw, None), pa.float64())
        flag(_np_mask(pc.is_inf(values)), "is out of range for a number")
    elif column.kind is Kind.BOOL:
        lowered = pc.utf8_lower(raw)
        is_true = _np_mask(pc.is_in(lowered, pa.array(sorted(TRUE_WORDS))))
        is_false = _np_mask(pc.is_in(lowered, pa.array(sorted(FALSE_WORDS))))
        flag(filled & ~(is_true | is_false), "is not a boolean (true/false, yes/no, 1/0)")
        values = pc.if_else(pa.array(is_true), True, pc.if_else(pa.array(is_false), False, None))
    elif column.kind is Kind.DATE:
        shaped = pc.if_else(pc.match_substring_regex(raw, _DATE_PATTERN), raw, None)
        parsed = pc.strptime(shaped, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2024-02-30 over to March; a real date prints back as itself.
        real = _np_mask(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), raw))
        flag(filled & ~real, "is not a date (YYYY-MM-DD)")
        values = pc.cast(pc.if_else(pa.array(real), parsed, None), pa.date32())
    elif column.vocabulary is not None:
        values = _canonical(raw, column.vocabulary)
        flag(filled & _np_mask(pc.is_null(values)), f"is not one of {column.vocabulary.describe()}")
    else:
        values = raw

    if column.non_negative and column.kind in (Kind.INT, Kind.NUM):
        flag(_np_mask(pc.less(values, 0)), "is negative")
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _canonical(raw: pa.ChunkedArray, vocabulary: Vocabulary) -> pa.ChunkedArray:
    """Each value's canonical spelling (null when unknown); matching as `spelling_key` does."""
    keys = pc.utf8_trim(
        pc.replace_substring_regex(pc.utf8_lower(raw), SEPARATORS_PATTERN, "_"), characters="_"
    )
    by_key = vocabulary.by_key
    positions = pc.index_in(keys, value_set=pa.array(list(by_key)))
    return pc.take(pa.array(list(by_key.values())), positions)


def _flag_duplicates(
    fields: pa.Table, table: LandingTable, lines: np.ndarray, reasons: _Reasons
) -> None:
    """Identical repeats: keep the first, reject the others. Conflicts: reject them all."""
    user_ids = pc.utf8_trim_whitespace(fields.column("user_id")).to_pandas()
    dup = user_ids.duplicated(keep=False).to_numpy() & (user_ids != "").to_numpy()
    if not dup.any():
        return
    rows = np.flatnonzero(dup)
    records = {
        i: tuple(fields.column(c)[i].as_py().strip() for c in table.column_names)
        for i in rows.tolist()
    }
    groups: dict[str, list[int]] = defaultdict(list)
    for i in rows.tolist():
        groups[records[i][0]].append(i)
    for user_id, members in groups.items():
        if len({records[i] for i in members}) == 1:
            first = lines[members[0]]
            reasons.add(
                np.array(members[1:]),
                f"user_id: {user_id!r} duplicates line {first} (identical record)",
            )
        else:
            listed = ", ".join(str(lines[i]) for i in members)
            reasons.add(
                np.array(members),
                f"user_id: {user_id!r} appears on lines {listed} with conflicting values",
            )


def _empty_typed(table: LandingTable) -> pa.Table:
    return pa.table({c.name: pa.array([], type=_ARROW_TYPES[c.kind]) for c in table.columns})
