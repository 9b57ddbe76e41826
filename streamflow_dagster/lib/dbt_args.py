"""Pure helpers that build dbt arguments from a partition (unit-tested on their own)."""

from __future__ import annotations

import json


def partition_vars(as_of: str) -> dict[str, str]:
    """dbt vars for one month: the marts rebuild and the tests check only `as_of`."""
    return {"as_of": as_of}


def build_args(as_of: str) -> list[str]:
    """`dbt build` of the month: models, snapshots of the month, tests scoped to it."""
    return ["build", "--vars", json.dumps(partition_vars(as_of), sort_keys=True)]
