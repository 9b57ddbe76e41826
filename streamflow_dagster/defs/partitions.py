"""The one monthly partitions definition every partitioned asset imports.

A partition key is the month's AS_OF, its last day (e.g. "2024-01-31"), exactly the name of
the landing folder. Keys are dynamic: a month exists once its files have landed (the CLI
and the landing sensor add it), so the UI shows the months there are, named by their AS_OF.
"""

from __future__ import annotations

import calendar
from datetime import date

import dagster as dg

AS_OF_PARTITIONS = dg.DynamicPartitionsDefinition(name="as_of")


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
