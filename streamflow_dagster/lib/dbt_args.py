"""Pure helpers that build dbt arguments from a partition (unit-tested on their own)."""

from __future__ import annotations

import json


def partition_vars(as_of: str) -> dict[str, str]:
    """dbt vars for one month: the marts rebuild and the tests check only `as_of`."""
    return {"as_of": as_of}


def build_args(as_of: str) -> list[str]:
    """`dbt build` of the month: its models and the data tests scoped to it.

    YAML unit tests check SQL logic, not data: they do not change from month to month, so
    the test suite runs them once (`unit_test_args`) instead of every partition.
    """
    return [
        "build",
        "--vars",
        json.dumps(partition_vars(as_of), sort_keys=True),
        "--exclude",
        "test_type:unit",
    ]


def unit_test_invocations() -> list[list[str]]:
    """The staging views first (unit tests read their parents' columns), then every unit test."""
    return [["run", "--select", "staging"], ["test", "--select", "test_type:unit"]]
