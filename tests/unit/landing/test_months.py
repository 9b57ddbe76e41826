"""Month discovery in the landing folder, and the AS_OF rule for a month folder's name."""

import pytest

from streamflow_dagster.landing.months import (
    REQUIRED_FILES,
    complete_months,
    has_labels,
    landed_months,
    validate_as_of,
)


@pytest.mark.parametrize("key", ["2024-02-28", "2024-13-31", "January", "2024-01-30"])
def test_as_of_must_be_a_month_end(key):
    with pytest.raises(ValueError, match="AS_OF"):
        validate_as_of(key)


def test_leap_month_end_is_valid():
    assert str(validate_as_of("2024-02-29")) == "2024-02-29"


def test_landed_months_are_the_month_end_folders_oldest_first(tmp_path):
    for name in ["2024-03-31", "2024-01-31", "2024-02-29", "notes", "2024-02-15"]:
        (tmp_path / name).mkdir()
    (tmp_path / "2024-04-30").write_text("a file, not a month folder")
    assert landed_months(tmp_path) == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert landed_months(tmp_path / "missing") == []


def test_a_month_is_complete_without_its_late_labels(tmp_path):
    required = list(REQUIRED_FILES)
    assert "labels.csv" not in required and len(required) == 5
    for month, files in {
        "2024-01-31": [*required, "labels.csv"],
        "2024-02-29": required,
        "2024-03-31": required[:-1],  # one required file missing
    }.items():
        (tmp_path / month).mkdir()
        for name in files:
            (tmp_path / month / name).write_text("")
    assert complete_months(tmp_path) == ["2024-01-31", "2024-02-29"]
    assert has_labels(tmp_path, "2024-01-31") and not has_labels(tmp_path, "2024-02-29")


def test_folders_outside_the_month_partitions_are_misnamed_with_the_reason(tmp_path, monkeypatch):
    from datetime import date

    from streamflow_dagster.landing.months import misnamed_months

    monkeypatch.setenv("STREAMFLOW_FIRST_MONTH", "2024-01-31")
    for name in ["2023-12-31", "2024-01-31", "2024-11-30", "2024-12-31", "2024-02-30"]:
        (tmp_path / name).mkdir()
    today = date(2024, 12, 2)  # November has ended, December has not
    assert landed_months(tmp_path, today) == ["2024-01-31", "2024-11-30"]
    reasons = dict(misnamed_months(tmp_path, today))
    assert sorted(reasons) == ["2023-12-31", "2024-02-30", "2024-12-31"]
    assert "before the first month 2024-01-31" in reasons["2023-12-31"]
    assert "STREAMFLOW_FIRST_MONTH" in reasons["2023-12-31"]
    assert "not an ISO date" in reasons["2024-02-30"]
    assert "has not ended yet" in reasons["2024-12-31"]

    monkeypatch.setenv("STREAMFLOW_FIRST_MONTH", "2023-12-31")
    assert landed_months(tmp_path, today)[0] == "2023-12-31"
    monkeypatch.setenv("STREAMFLOW_FIRST_MONTH", "2023-12-30")
    with pytest.raises(ValueError, match="STREAMFLOW_FIRST_MONTH='2023-12-30'"):
        landed_months(tmp_path, today)
