"""Pure helpers that build dbt arguments from a partition (unit-tested on their own)."""

from __future__ import annotations

import json


def partition_vars(first: str, last: str | None = None) -> dict[str, str]:
    """dbt vars for the months `first`..`last` (inclusive; one month when `last` is None or
    equal): the marts rebuild and the tests check only those months."""
    if last is None or last == first:
        return {"as_of": first}
    if last < first:
        raise ValueError(f"range {first}..{last}: write the earlier month first")
    return {"as_of_from": first, "as_of_to": last}


def build_args(first: str, last: str | None = None) -> list[str]:
    """`dbt build` of the months `first`..`last` in one invocation: their models and the data
    tests scoped to them (dbt starts and parses once for the whole range).

    YAML unit tests check SQL logic, not data: they do not change from month to month, so
    the test suite runs them once (`unit_test_invocations`) instead of every partition.
    """
    return [
        "build",
        "--vars",
        json.dumps(partition_vars(first, last), sort_keys=True),
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


# `dbt parse` renders profiles.yml, which reads these; parsing never connects, so a
# placeholder stands in for a value the environment does not give. Also read by setup.py,
# which parses the shipped project when a wheel is built: keep this module free of imports
# beyond the standard library.
PARSE_ENV_DEFAULTS = {
    "STREAMFLOW_PG_HOST": "127.0.0.1",
    "STREAMFLOW_PG_PORT": "5432",
    "STREAMFLOW_PG_USER": "postgres",
    "STREAMFLOW_PG_PASSWORD": "",
    "STREAMFLOW_PG_DBNAME": "streamflow",
}


def parse_args(project_dir: str, profiles_dir: str, target_dir: str) -> list[str]:
    """`dbt parse` of the project into `target_dir` (no connection: only the profile's shape)."""
    return [
        "parse",
        "--quiet",
        "--project-dir",
        project_dir,
        "--profiles-dir",
        profiles_dir,
        "--target-path",
        target_dir,
    ]
