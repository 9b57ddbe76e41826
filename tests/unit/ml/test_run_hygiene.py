"""When a RUNNING MLflow run is an orphan (its owner is gone), as a pure function of its tags."""

from __future__ import annotations

import os
import socket
import time

from streamflow_dagster.ml.run_hygiene import (
    HOST_TAG,
    PID_TAG,
    PROCESS_STARTED_TAG,
    STALE_AFTER_S,
    orphan_reason,
    process_tags,
)

NOW = time.time()
JUST_NOW_MS = int(NOW * 1000)


def unknown(run_id: str) -> None:
    return None


def test_a_run_of_this_live_process_is_not_an_orphan():
    assert orphan_reason(process_tags(), JUST_NOW_MS, unknown, NOW) is None


def test_a_run_whose_process_is_gone_is_an_orphan():
    tags = {PID_TAG: str(2**22 + 17), HOST_TAG: socket.gethostname()}  # above pid_max
    assert "gone" in orphan_reason(tags, JUST_NOW_MS, unknown, NOW)


def test_a_reused_pid_is_told_apart_by_its_start_time():
    tags = {**process_tags(), PROCESS_STARTED_TAG: "12.00"}  # this pid, but not this process
    assert "gone" in orphan_reason(tags, JUST_NOW_MS, unknown, NOW)


def test_a_run_whose_dagster_run_is_over_is_an_orphan_even_if_its_process_lives():
    tags = {**process_tags(), "dagster_run_id": "abc"}
    reason = orphan_reason(tags, JUST_NOW_MS, lambda run_id: "FAILURE", NOW)
    assert reason == "its Dagster run abc is over (FAILURE) and never ended it"
    assert orphan_reason(tags, JUST_NOW_MS, lambda run_id: "STARTED", NOW) is None


def test_a_run_from_another_host_is_an_orphan_only_when_stale():
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: "another-host"}
    assert orphan_reason(tags, JUST_NOW_MS, unknown, NOW) is None
    old_ms = int((NOW - STALE_AFTER_S - 60) * 1000)
    assert "RUNNING for 6.0 h" in orphan_reason(tags, old_ms, unknown, NOW)
