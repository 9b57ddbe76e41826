import json

import pytest

from streamflow_dagster.cli.runner import landed_months, select_months
from streamflow_dagster.defs.partitions import validate_as_of
from streamflow_dagster.lib.dbt_args import build_args


def test_build_args_scopes_dbt_to_the_month():
    args = build_args("2024-02-29")
    assert args[0] == "build" and json.loads(args[args.index("--vars") + 1]) == {
        "as_of": "2024-02-29"
    }
    assert args[args.index("--exclude") + 1] == "test_type:unit"


@pytest.mark.parametrize("key", ["2024-02-28", "2024-13-31", "January", "2024-01-30"])
def test_as_of_must_be_a_month_end(key):
    with pytest.raises(ValueError, match="AS_OF"):
        validate_as_of(key)


def test_leap_month_end_is_valid():
    assert str(validate_as_of("2024-02-29")) == "2024-02-29"


def test_landed_months_and_windows(tmp_path):
    for name in ["2024-01-31", "2024-02-29", "2024-03-31", "notes", "2024-02-15"]:
        (tmp_path / name).mkdir()
    months = landed_months(tmp_path)
    assert months == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert select_months(months, "2024-02-29..") == ["2024-02-29", "2024-03-31"]
    assert select_months(months, "..2024-01-31") == ["2024-01-31"]
    assert select_months(months, "2024-03-31") == ["2024-03-31"]
    with pytest.raises(ValueError, match="no landed month"):
        select_months(months, "2025-01-31..2025-02-28")
