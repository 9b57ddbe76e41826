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


# Marts that other marts' unit tests read (their columns must exist): built empty.
UNIT_TEST_PARENT_MARTS = ("subscriptions_profile_snapshots",)


def unit_test_invocations() -> list[list[str]]:
    """The unit tests' parents first (they read their columns), then every unit test.

    Staging views, then the marts other marts read, built without rows (`--empty`).
    """
    return [
        ["run", "--select", "staging"],
        ["run", "--select", *UNIT_TEST_PARENT_MARTS, "--empty"],
        ["test", "--select", "test_type:unit"],
    ]
