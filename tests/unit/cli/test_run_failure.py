"""A run failed from outside its steps: the terminal says why, not only that it failed."""

from __future__ import annotations

import sys

import dagster as dg
from dagster._core.events import EngineEventData
from dagster._utils.error import serializable_error_info_from_exc_info

from streamflow_dagster.cli.runner import _run_failure

DEQUEUE = "Run dequeue failed to reach the user code server after 3 attempts, failing run"
TIMEOUT = "User code server request timed out due to taking longer than 300 seconds to complete."


@dg.op
def noop() -> None:
    pass


@dg.job
def one_op() -> None:
    noop()


def test_the_error_behind_an_outside_failure_is_shown():
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(one_op)
        instance.report_engine_event("Launching run", run)  # no error: not shown
        try:
            raise TimeoutError(TIMEOUT)
        except TimeoutError:
            error = serializable_error_info_from_exc_info(sys.exc_info())
        instance.report_engine_event(DEQUEUE, run, EngineEventData.engine_error(error))
        instance.report_run_failed(run)
        lines = _run_failure(instance, run.run_id)
    assert lines[0] == "run: This run has been marked as failed from outside the execution context."
    assert lines[1:] == [f"run: {DEQUEUE}: TimeoutError: {TIMEOUT}"]


def test_a_failure_with_its_own_words_needs_nothing_else():
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(one_op)
        instance.report_run_failed(run, "Detected run worker status FAILED: pid 7 is gone")
        assert _run_failure(instance, run.run_id) == [
            "run: Detected run worker status FAILED: pid 7 is gone"
        ]
