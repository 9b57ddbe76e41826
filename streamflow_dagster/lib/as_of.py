"""AS_OF dates, without Dagster: a month is named by its last day (2024-01-31).

`defs.partitions` re-exports these for the assets; the CLI and the landing code import them
from here, so a command's --help or a month window never loads Dagster.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

_YEAR_MONTH = re.compile(r"^\d{4}-\d{2}$")


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def validate_as_of(key: str) -> date:
    """The AS_OF date of a partition key, or a ValueError that says what a key must be."""
    try:
        parsed = date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"AS_OF {key!r} is not an ISO date like 2024-01-31") from None
    if parsed != month_end(parsed):
        raise ValueError(f"AS_OF {key!r} is not the last day of its month ({month_end(parsed)})")
    return parsed


def parse_month(text: str) -> date:
    """A month as a user writes it: its AS_OF (2024-03-31) or the month itself (2024-03)."""
    if _YEAR_MONTH.match(text):
        year, month = (int(part) for part in text.split("-"))
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r} is not a month: the month number must be 01 to 12")
        return month_end(date(year, month, 1))
    try:
        return validate_as_of(text)
    except ValueError as error:
        raise ValueError(f"{error}; or give the month as YYYY-MM (e.g. 2024-03)") from None


def months_window(window: str) -> tuple[date | None, date | None]:
    """'A..B' (inclusive, either side may be empty) or 'A' alone, as (start, end) AS_OFs."""
    start_text, sep, end_text = window.strip().partition("..")
    if not sep:
        end_text = start_text
    start = parse_month(start_text.strip()) if start_text.strip() else None
    end = parse_month(end_text.strip()) if end_text.strip() else None
    if start and end and start > end:
        raise ValueError(
            f"start {start} is after end {end}: write the earlier month first ({end}..{start})"
        )
    return start, end
