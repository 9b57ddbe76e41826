"""The one monthly partitions definition every partitioned asset imports.

A partition key is the month's AS_OF, its last day (e.g. "2024-01-31"), exactly the name of
the landing folder. Keys are dynamic: a month exists once its files have landed (the CLI
and the landing sensor add it), so the UI shows the months there are, named by their AS_OF.
The key rule itself (`validate_as_of`, `month_end`) is pure and lives in `landing/months.py`.
"""

from __future__ import annotations

import dagster as dg

from ..lib.as_of import month_end, validate_as_of

AS_OF_PARTITIONS = dg.DynamicPartitionsDefinition(name="as_of")

__all__ = ["AS_OF_PARTITIONS", "month_end", "validate_as_of"]
