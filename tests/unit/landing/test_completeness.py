"""The landing completeness rule: a manifest that matches, or files unchanged for a while."""

from __future__ import annotations

import json
import os
import time

import pytest

from streamflow_dagster.landing.completeness import (
    COMPLETE,
    INCOMPLETE,
    LABELS_FILE,
    MANIFEST,
    REFUSED,
    SETTLING,
    LandingNotReady,
    check_month,
    file_rows,
    read_when_complete,
    require_complete,
    wait_until_complete,
    write_manifest,
)
from streamflow_dagster.landing.contract import LANDING_TABLES

ROWS = 5


def land(folder, *, labels=True, age_s=60.0, manifest=False):
    folder.mkdir(parents=True, exist_ok=True)
    for table in LANDING_TABLES:
        if table.name == "labels" and not labels:
            continue
        lines = [",".join(table.column_names)] + [
            ",".join(f"{c}{i}" for c in table.column_names) for i in range(ROWS)
        ]
        path = folder / table.file
        path.write_text("\n".join(lines) + "\n")
        then = time.time() - age_s
        os.utime(path, (then, then))
    if manifest:
        write_manifest(folder)
    return folder


def truncate_to_lines(path, lines: int):
    """Keep the first `lines` lines: a copy cut at a line boundary."""
    kept = path.read_text().splitlines(keepends=True)[:lines]
    path.write_text("".join(kept))


def test_settled_files_are_complete_fresh_ones_settle(tmp_path):
    month = land(tmp_path / "2024-01-31")
    assert check_month(month, settle_seconds=10).status == COMPLETE
    (month / "usage_agg_30d.csv").write_text("user_id\n")  # just written
    check = check_month(month, settle_seconds=10)
    assert check.status == SETTLING
    assert "usage_agg_30d.csv" in check.reasons[0] and "10 s" in check.reasons[0]
    assert check_month(month, settle_seconds=0).status == COMPLETE


def test_a_missing_required_file_is_incomplete_labels_are_optional(tmp_path):
    month = land(tmp_path / "2024-01-31", labels=False)
    assert check_month(month, 10).complete
    (month / "payments_agg_90d.csv").unlink()
    check = check_month(month, 10)
    assert check.status == INCOMPLETE and check.reasons == ("payments_agg_90d.csv: not there yet",)


def test_manifest_makes_fresh_files_complete_and_refuses_a_truncated_one(tmp_path):
    month = land(tmp_path / "2024-01-31", age_s=0, manifest=True)
    assert check_month(month, settle_seconds=3600).status == COMPLETE
    entries = json.loads((month / MANIFEST).read_text())["files"]
    assert entries["usage_agg_30d.csv"]["rows"] == ROWS

    truncate_to_lines(month / "usage_agg_30d.csv", 3)
    check = check_month(month, settle_seconds=0)
    assert check.status == REFUSED
    (reason,) = check.reasons
    assert reason.startswith(f"usage_agg_30d.csv: 2 rows, {MANIFEST} says {ROWS}")
    with pytest.raises(LandingNotReady, match="usage_agg_30d.csv: 2 rows"):
        wait_until_complete(month, 0, timeout_seconds=5)


def test_same_rows_other_bytes_is_refused_by_sha256(tmp_path):
    month = land(tmp_path / "2024-01-31", manifest=True)
    path = month / "users.csv"
    path.write_text(path.read_text().replace("user_id0", "user_idX"))
    (reason,) = check_month(month, 0).reasons
    assert "users.csv: sha256 differs" in reason and f"rows match: {ROWS}" in reason


def test_manifest_listing_a_file_not_there_yet_is_incomplete(tmp_path):
    month = land(tmp_path / "2024-01-31", manifest=True)
    (month / LABELS_FILE).unlink()
    check = check_month(month, 0)
    assert check.status == INCOMPLETE and LABELS_FILE in check.reasons[0]


def test_a_file_the_manifest_does_not_list_must_settle(tmp_path):
    month = land(tmp_path / "2024-01-31", labels=False, age_s=0, manifest=True)
    assert check_month(month, 3600).complete
    (month / LABELS_FILE).write_text("user_id,churn_label\n")  # late, no new manifest
    check = check_month(month, 3600)
    assert check.status == SETTLING and check.reasons[0].startswith(LABELS_FILE)


def test_a_broken_manifest_is_refused_with_where(tmp_path):
    month = land(tmp_path / "2024-01-31")
    (month / MANIFEST).write_text('{"files": {"users.csv": ')
    check = check_month(month, 0)
    assert check.status == REFUSED and "line 1, column" in check.reasons[0]
    (month / MANIFEST).write_text('{"files": {"users.csv": {"size": 3}}}')
    assert "'users.csv' needs" in check_month(month, 0).reasons[0]


def test_fingerprints_follow_data_files_and_labels_separately(tmp_path):
    month = land(tmp_path / "2024-01-31", labels=False)
    first = check_month(month, 0)
    assert first.labels_fingerprint is None
    (month / LABELS_FILE).write_text("user_id,churn_label\n")
    with_labels = check_month(month, 0)
    assert with_labels.fingerprint == first.fingerprint and with_labels.labels_fingerprint
    (month / "users.csv").write_text((month / "users.csv").read_text() + "extra,row\n")
    assert check_month(month, 0).fingerprint != first.fingerprint


def test_rows_count_csv_records_not_lines(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('a,b\n1,"two\nlines"\n\n3,4\n')
    assert file_rows(path) == 2


def test_read_when_complete_refuses_a_month_that_changed_while_read(tmp_path):
    month = land(tmp_path / "2024-01-31")

    def read_while_a_copy_goes_on():
        with (month / "users.csv").open("a") as fh:
            fh.write("late,row\n")
        return "parsed"

    with pytest.raises(LandingNotReady, match="changed while it was being read"):
        read_when_complete(month, 0, read_while_a_copy_goes_on)
    check, parsed = read_when_complete(month, 0, lambda: "parsed")
    assert parsed == "parsed" and check.complete


def test_require_complete_waits_for_settling_and_names_every_bad_month(tmp_path):
    land(tmp_path / "2024-01-31", age_s=0)
    waits: list[str] = []
    require_complete(tmp_path, ["2024-01-31"], settle_seconds=0.5, echo=waits.append)
    assert waits and waits[0].startswith("waiting for 2024-01-31")

    land(tmp_path / "2024-02-29", manifest=True)
    truncate_to_lines(tmp_path / "2024-02-29" / "support_agg_90d.csv", 2)
    (tmp_path / "2024-01-31" / "users.csv").unlink()
    with pytest.raises(LandingNotReady) as raised:
        require_complete(tmp_path, ["2024-01-31", "2024-02-29"], 0)
    message = str(raised.value)
    assert "2024-01-31" in message and "users.csv: not there yet" in message
    assert "support_agg_90d.csv: 1 rows" in message and "Nothing was run" in message


def test_demo_months_are_complete_as_soon_as_written(tmp_path):
    from streamflow_dagster.landing.demo_data import generate_landing

    generate_landing(tmp_path, users=30, months=2, seed=5)
    for folder in sorted(tmp_path.iterdir()):
        check = check_month(folder, settle_seconds=3600)  # fresh files: only the manifest
        assert check.complete, check.reasons
        assert (folder / MANIFEST).stat().st_mtime_ns >= (folder / "users.csv").stat().st_mtime_ns
