"""Parse and validate one landing file against the contract. Pure: no database, no Dagster.

Every data row either comes out typed in `ParsedFile.accepted` or goes to
`ParsedFile.rejections` with its line number, the raw record and a reason naming the
column and the value; nothing is dropped or coerced silently. Whole-file problems that
leave nothing to load row by row (not UTF-8, duplicate header names) raise
`LandingFileError`, so the month is not touched at all.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .contract import FALSE_WORDS, TRUE_WORDS, Column, Kind, LandingTable

REJECTION_COLUMNS = ["line_number", "raw_record", "reason"]
_INT_PATTERN = r"^[+-]?\d{1,18}$"  # 18 digits always fit PostgreSQL's bigint
_NUM_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


class LandingFileError(ValueError):
    """A landing file that cannot be read at all; the message says which and where."""


@dataclass
class ParsedFile:
    table: LandingTable
    path: Path
    accepted: pd.DataFrame  # typed, contract columns in contract order
    rejections: pd.DataFrame  # line_number, raw_record, reason
    rows_read: int  # data records found (accepted + rejected)
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)

    @property
    def reject_rate(self) -> float:
        return len(self.rejections) / self.rows_read if self.rows_read else 0.0


def _record_text(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def _read_records(path: Path) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """Header and (first line number, fields) of every non-blank record.

    utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and quoted newlines.
    """
    records: list[tuple[int, list[str]]] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            line = reader.line_num
            for fields in reader:
                start, line = line + 1, reader.line_num
                if fields:  # a blank line holds no record
                    records.append((start, fields))
    except UnicodeDecodeError as err:
        raise LandingFileError(
            f"{path}: not valid UTF-8 at byte {err.start} ({err.reason}); "
            "re-export the file as UTF-8"
        ) from err
    except csv.Error as err:
        raise LandingFileError(
            f"{path}, line {reader.line_num}: malformed CSV ({err}); fix the quoting there"
        ) from err
    return header, records


def parse_landing_file(path: Path, table: LandingTable) -> ParsedFile:
    header, records = _read_records(path)
    if header is None:
        rejections = pd.DataFrame(
            [(1, "", f"{table.file} is empty: expected a header row with {table.column_names}")],
            columns=REJECTION_COLUMNS,
        )
        return ParsedFile(
            table,
            path,
            _empty_typed(table),
            rejections,
            rows_read=1,
            missing_columns=table.column_names,
        )

    names = [h.strip() for h in header]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise LandingFileError(f"{path}, line 1: header repeats column(s) {duplicated}")
    missing = [c for c in table.column_names if c not in names]
    extra = [n for n in names if n not in table.column_names]

    if not records:
        rejections = pd.DataFrame(
            [(1, _record_text(header), f"{table.file} has a header but no data rows")],
            columns=REJECTION_COLUMNS,
        )
        return ParsedFile(table, path, _empty_typed(table), rejections, 1, missing, extra)

    lines = np.fromiter((r[0] for r in records), dtype=np.int64, count=len(records))
    width = len(names)
    reasons = pd.Series("", index=range(len(records)), dtype=object)
    ragged = np.fromiter((len(r[1]) != width for r in records), dtype=bool, count=len(records))
    if ragged.any():
        for i in np.flatnonzero(ragged):
            found = len(records[i][1])
            reasons[i] = f"expected {width} fields as in the header, found {found}" + (
                " (truncated line?)" if found < width else ""
            )
    if missing:
        reasons[~ragged] = f"missing required column(s): {', '.join(missing)}"

    well_formed = [
        r[1] if not bad else [""] * width for r, bad in zip(records, ragged, strict=True)
    ]
    frame = pd.DataFrame(well_formed, columns=names, dtype=object)
    del well_formed
    present = [c for c in table.columns if c.name in names]
    typed = {}
    for column in present:
        raw = frame[column.name].str.strip()
        values, problems = _check_column(column, raw)
        typed[column.name] = values
        _add_reasons(reasons, problems, ~ragged)

    valid = (reasons == "").to_numpy()
    if not missing:
        _flag_duplicates(frame, typed, table, lines, valid, reasons)
        valid = (reasons == "").to_numpy()

    rejected_idx = np.flatnonzero(~valid)
    rejections = pd.DataFrame(
        {
            "line_number": lines[rejected_idx],
            "raw_record": [_record_text(records[i][1]) for i in rejected_idx],
            "reason": reasons.iloc[rejected_idx].to_numpy(),
        },
        columns=REJECTION_COLUMNS,
    )
    if missing:
        accepted = _empty_typed(table)
    else:
        accepted = pd.DataFrame({c.name: typed[c.name][valid] for c in table.columns})
        accepted = accepted.reset_index(drop=True)
    return ParsedFile(table, path, accepted, rejections, len(records), missing, extra)


def _add_reasons(reasons: pd.Series, problems: pd.Series, applicable: np.ndarray) -> None:
    has = (problems != "").to_numpy() & applicable
    if not has.any():
        return
    current = reasons[has]
    reasons[has] = np.where(current == "", problems[has], current + "; " + problems[has])


def _check_column(column: Column, raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Typed values of one column and, per row, '' or the reason it breaks the contract."""
    problems = pd.Series("", index=raw.index, dtype=object)
    blank = raw == ""
    name = column.name

    def flag(mask: pd.Series, what: str) -> None:
        mask = mask & (problems == "")
        if mask.any():
            problems[mask] = [f"{name}: {v!r} {what}" for v in raw[mask]]

    if not column.nullable:
        problems[blank] = f"{name}: blank but required"

    filled = ~blank
    if column.kind is Kind.INT:
        ok = raw.str.fullmatch(_INT_PATTERN)
        flag(filled & ~ok & raw.str.fullmatch(r"[+-]?\d+"), "is out of range for an integer")
        flag(filled & ~ok, "is not an integer")
        values = pd.to_numeric(raw.where(ok & filled), errors="coerce").astype("Int64")
    elif column.kind is Kind.NUM:
        ok = raw.str.fullmatch(_NUM_PATTERN)
        flag(filled & ~ok, "is not a number")
        values = pd.to_numeric(raw.where(ok & filled), errors="coerce").astype("float64")
        flag(pd.Series(np.isinf(values), index=raw.index), "is out of range for a number")
    elif column.kind is Kind.BOOL:
        lowered = raw.str.lower()
        is_true, is_false = lowered.isin(TRUE_WORDS), lowered.isin(FALSE_WORDS)
        flag(filled & ~(is_true | is_false), "is not a boolean (true/false, yes/no, 1/0)")
        values = pd.Series(pd.NA, index=raw.index, dtype="boolean")
        values[is_true] = True
        values[is_false] = False
    elif column.kind is Kind.DATE:
        parsed = pd.to_datetime(
            raw.where(raw.str.fullmatch(_DATE_PATTERN)), errors="coerce", format="%Y-%m-%d"
        )
        flag(filled & parsed.isna(), "is not a date (YYYY-MM-DD)")
        values = parsed.dt.date
    else:
        values = raw
        if column.accepted:
            flag(
                filled & ~raw.str.lower().isin(column.accepted),
                f"is not one of {', '.join(column.accepted)}",
            )

    if column.non_negative and column.kind in (Kind.INT, Kind.NUM):
        flag(values.lt(0).fillna(False).astype(bool), "is negative")
    return values, problems


def _flag_duplicates(frame, typed, table, lines, valid, reasons) -> None:
    """Identical repeats: keep the first, reject the others. Conflicts: reject them all."""
    key = typed["user_id"]
    candidate = valid & (key != "").to_numpy()
    dup_mask = key[candidate].duplicated(keep=False)
    if not dup_mask.any():
        return
    idx = np.flatnonzero(candidate)[dup_mask.to_numpy()]
    rows = frame.iloc[idx][table.column_names].apply(lambda s: s.str.strip())
    for user_id, group in rows.groupby(rows["user_id"], sort=False):
        group_lines = lines[group.index.to_numpy()]
        if (group.drop(columns="user_id").nunique(dropna=False) <= 1).all():
            first = group_lines[0]
            for i in group.index[1:]:
                reasons[i] = f"user_id: {user_id!r} duplicates line {first} (identical record)"
        else:
            listed = ", ".join(str(n) for n in group_lines)
            for i in group.index:
                reasons[i] = (
                    f"user_id: {user_id!r} appears on lines {listed} with conflicting values"
                )


def _empty_typed(table: LandingTable) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=object) for c in table.columns})
