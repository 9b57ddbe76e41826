"""The prediction log's spool file: rows survive a stop while the database is away."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from streamflow_dagster.serving.spool import Spool

ROW = (
    datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
    "u-1",
    "production",
    "production",
    3,
    0.42,
    True,
    datetime(2024, 2, 29, tzinfo=UTC),
)


def test_saved_rows_come_back_once_and_are_released(tmp_path):
    spool = Spool(tmp_path)
    spool.save([ROW, (*ROW[:7], None)])
    rows, claimed = spool.claim()
    assert rows == [ROW, (*ROW[:7], None)]
    assert Spool(tmp_path).claim() == ([], [])  # claimed: another process does not replay it
    Spool.release(claimed)
    assert list(tmp_path.iterdir()) == []


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    spool = Spool(tmp_path)
    path = spool.save([ROW])
    dead_pid = 2**22 + 17  # above the default pid_max: no such process
    path.rename(path.with_name(f"{path.name}.claimed-{dead_pid}"))
    rows, claimed = spool.claim()
    assert rows == [ROW]
    assert claimed[0].name.endswith(f".claimed-{os.getpid()}")
