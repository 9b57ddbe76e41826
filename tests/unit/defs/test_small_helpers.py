import json

import dagster as dg
import pytest

from streamflow_dagster.cli.runner import month_ranges, partition_tags, select_months
from streamflow_dagster.defs.checks import to_check_result
from streamflow_dagster.lib.as_of import validate_as_of
from streamflow_dagster.lib.checks import CheckOutcome
from streamflow_dagster.lib.dbt_args import build_args


def test_build_args_scopes_dbt_to_the_month():
    args = build_args("2024-02-29")
    assert args[0] == "build" and json.loads(args[args.index("--vars") + 1]) == {
        "as_of": "2024-02-29"
    }
    assert args[args.index("--exclude") + 1] == "test_type:unit"


def test_build_args_builds_a_range_of_months_in_one_invocation():
    args = build_args("2024-01-31", "2024-03-31")
    assert json.loads(args[args.index("--vars") + 1]) == {
        "as_of_from": "2024-01-31",
        "as_of_to": "2024-03-31",
    }
    assert build_args("2024-01-31", "2024-01-31") == build_args("2024-01-31")
    with pytest.raises(ValueError, match="earlier month first"):
        build_args("2024-03-31", "2024-01-31")


def test_consecutive_months_are_one_run_and_a_gap_starts_another():
    months = ["2024-03-31", "2024-01-31", "2024-02-29", "2024-05-31", "2024-12-31", "2025-01-31"]
    assert month_ranges(months) == [
        ["2024-01-31", "2024-02-29", "2024-03-31"],
        ["2024-05-31"],
        ["2024-12-31", "2025-01-31"],
    ]
    assert partition_tags(["2024-05-31"]) == {"dagster/partition": "2024-05-31"}
    assert partition_tags(["2024-01-31", "2024-02-29", "2024-03-31"]) == {
        "dagster/asset_partition_range_start": "2024-01-31",
        "dagster/asset_partition_range_end": "2024-03-31",
    }


def test_partition_keys_are_month_ends_from_the_first_month():
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from streamflow_dagster.defs.month_runs import run_months
    from streamflow_dagster.defs.partitions import AS_OF_PARTITIONS

    keys = AS_OF_PARTITIONS.get_partition_keys()
    assert keys[:3] == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert all(str(validate_as_of(k)) == k for k in keys)
    assert ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"
    tags = partition_tags(["2024-11-30", "2024-12-31", "2025-01-31", "2025-02-28"])
    assert run_months(tags) == ["2024-11-30", "2024-12-31", "2025-01-31", "2025-02-28"]


def test_select_months_windows():
    months = ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert select_months(months, "2024-02-29..") == ["2024-02-29", "2024-03-31"]
    assert select_months(months, "..2024-01-31") == ["2024-01-31"]
    assert select_months(months, "2024-03-31") == ["2024-03-31"]
    with pytest.raises(ValueError, match="no landed month"):
        select_months(months, "2025-01-31..2025-02-28")


def test_to_check_result_carries_the_whole_outcome():
    outcome = CheckOutcome(False, "WARN", "12 rows vs 10 (+20.0%)", {"rows_loaded": 12})
    result = to_check_result("row_count_change", outcome, asset="raw_users")
    assert result.asset_key == dg.AssetKey("raw_users")
    assert result.check_name == "row_count_change"
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == "12 rows vs 10 (+20.0%)"
    assert result.metadata == {"rows_loaded": dg.IntMetadataValue(12)}
    # Without an asset the check belongs to the asset whose step returns it.
    error = to_check_result("auc_above_floor", CheckOutcome(True, "ERROR", "ok"))
    assert error.asset_key is None and error.severity == dg.AssetCheckSeverity.ERROR
