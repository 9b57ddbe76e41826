"""Which months a run was made for: what the landing sensor treats as already handled.

Month partitions are time windows, so every month from STREAMFLOW_FIRST_MONTH on is a
partition whether or not it ran. A month is known once a run of the monthly or labels job
targets it (one month, or a range that contains it), once its landing assets were
materialized (e.g. by a UI backfill), or once `streamflow run` / `streamflow demo` claimed it
before starting the deployment (so the sensor's first tick never starts a second run of a
month the command is about to run, or chose not to run).
"""

from __future__ import annotations

import json

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from .partitions import AS_OF_PARTITIONS

# Instance key-value entry (run storage) holding the months the CLI claimed, as JSON.
CLAIMED_MONTHS_KEY = "streamflow/claimed_months"
# The landing asset every month run materializes first.
LANDED_ASSET = dg.AssetKey("raw_users")


def run_months(tags: dict[str, str]) -> list[str]:
    """The months a run targets, from its partition tags (one key, or a range's every key)."""
    if tags.get(PARTITION_NAME_TAG):
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return list(AS_OF_PARTITIONS.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))
    return []


def claim_months(instance: dg.DagsterInstance, months: list[str]) -> None:
    """Record `months` as handled by the command that is about to run them (or skip them)."""
    claimed = set(_claimed(instance)) | set(months)
    instance.run_storage.set_cursor_values({CLAIMED_MONTHS_KEY: json.dumps(sorted(claimed))})


def known_months(instance: dg.DagsterInstance, job_names: list[str]) -> set[str]:
    """Months claimed, materialized, or targeted by any run of `job_names` (any status)."""
    known = set(_claimed(instance))
    known |= set(instance.get_materialized_partitions(LANDED_ASSET))
    for job_name in job_names:
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job_name)):
            known |= set(run_months(run.tags))
    return known


def _claimed(instance: dg.DagsterInstance) -> list[str]:
    raw = instance.run_storage.get_cursor_values({CLAIMED_MONTHS_KEY}).get(CLAIMED_MONTHS_KEY)
    return json.loads(raw) if raw else []
