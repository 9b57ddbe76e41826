"""The one monthly partitions definition every partitioned asset imports.

A partition key is the month's AS_OF, its last day (e.g. "2024-01-31"), exactly the name of
the landing folder. Keys are month-end time windows: cron `0 0 L * *` fires on each month's
last day, and the window that starts on it is named by that day. `end_offset=1` includes the
month that ended last (its window is still open today), so a month's files, which land in
the days after its AS_OF, always have a key. Keys start at STREAMFLOW_FIRST_MONTH (default
2024-01-31, the first month of the demo data and of the Telco import). Being time windows,
the UI selects ranges of months and a backfill builds a range in one run.
The key rule itself (`validate_as_of`, `month_end`) is pure and lives in `lib/as_of.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from ..lib.as_of import month_end, validate_as_of
from ..platform.settings import first_month

MONTH_END_CRON = "0 0 L * *"  # midnight of each month's last day ("L": last day of month)
AS_OF_FORMAT = "%Y-%m-%d"

AS_OF_PARTITIONS = dg.TimeWindowPartitionsDefinition(
    cron_schedule=MONTH_END_CRON,
    fmt=AS_OF_FORMAT,
    start=first_month(),
    end_offset=1,
    timezone="UTC",
)


def partition_months(context: dg.AssetExecutionContext) -> list[str]:
    """The months (AS_OF keys) the step builds, oldest first: one, or a range's every month.

    Each key is checked by the AS_OF rule, so a month the definition would not name never
    reaches SQL.
    """
    keys: Sequence[str] = context.partition_keys
    for key in keys:
        validate_as_of(key)
    return sorted(keys)


__all__ = ["AS_OF_PARTITIONS", "month_end", "partition_months", "validate_as_of"]
