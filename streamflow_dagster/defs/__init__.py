"""The Dagster definitions: assets, checks, jobs, sensors, schedules, resources."""

import warnings

import dagster as dg

# The partitioned assets take `backfill_policy=single_run()` (a range of months in one run,
# defs/ranges.py), a parameter Dagster 1.13 marks beta: said once here, not on every import
# of the definitions (code server, CLI, tests).
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
# Every monthly check spec is partitioned by month on purpose (defs/checks.py explains why):
# Dagster 1.13 calls that a preview and would warn once per spec in every process.
warnings.filterwarnings(
    "ignore",
    message="Specifying a partitions_def on an AssetCheckSpec",
    category=dg.PreviewWarning,
)
