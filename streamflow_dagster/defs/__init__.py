"""The Dagster definitions: assets, checks, jobs, sensors, schedules, resources."""

import warnings

import dagster as dg

# Every monthly check spec is partitioned by month on purpose (defs/checks.py explains why):
# Dagster 1.13 calls that a preview and would warn once per spec in every process.
warnings.filterwarnings(
    "ignore",
    message="Specifying a partitions_def on an AssetCheckSpec",
    category=dg.PreviewWarning,
)
