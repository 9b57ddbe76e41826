"""Faults at the landing folder: a file still being written, a file cut short, on the real
PostgreSQL. Invariants: no partial month in any raw table, other months byte-identical, a
message naming the file and what differs, and the month runs again once its files are right.
"""

from __future__ import annotations

import threading
import time

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from streamflow_dagster.cli.main import main
from streamflow_dagster.definitions import build_definitions
from streamflow_dagster.defs.resources import LandingResource
from streamflow_dagster.landing.completeness import MANIFEST, file_rows, write_manifest
from streamflow_dagster.landing.contract import LANDING_TABLES
from tests.integration.defs.test_sensors import evaluate, requested
from tests.integration.helpers import raw_checksums, write_month
from tests.integration.landing.test_ingestion import JAN, clean_month, materialize

pytestmark = [pytest.mark.faults, pytest.mark.integration]

FEB = "2024-02-29"
USAGE = "usage_agg_30d.csv"


def month_rows(database_url: str, as_of: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        tables = [t.name for t in LANDING_TABLES] + ["quarantine"]
        return {
            t: conn.execute(f"select count(*) from raw.{t} where as_of = %s", (as_of,)).fetchone()[
                0
            ]
            for t in tables
        }


def cut_at_line(path, keep_lines: int) -> None:
    """What a copy interrupted at a line boundary leaves: the first lines, nothing else."""
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:keep_lines]))


def test_a_truncated_file_is_refused_and_nothing_of_its_month_is_written(tmp_path, database_url):
    landing = tmp_path / "landing"
    write_month(landing, JAN, clean_month())
    materialize(tmp_path, database_url, JAN)
    with psycopg.connect(database_url) as conn:
        before = raw_checksums(conn)

    ids = tuple(f"u{i}" for i in range(40))
    folder = write_month(landing, FEB, clean_month(ids))
    write_manifest(folder)
    whole = (folder / USAGE).read_text()
    cut_at_line(folder / USAGE, 21)  # header + 20 of 40 rows, cut cleanly at a line end

    result = materialize(tmp_path, database_url, FEB, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert f"{USAGE}: 20 rows, {MANIFEST} says 40" in message, message
    assert "Traceback" not in message
    assert set(month_rows(database_url, FEB).values()) == {0}  # no partial month anywhere
    with psycopg.connect(database_url) as conn:
        assert raw_checksums(conn) == before  # the other month byte-identical

    (folder / USAGE).write_text(whole)  # the copy completes: the month runs, whole
    materialize(tmp_path, database_url, FEB)
    rows = month_rows(database_url, FEB)
    assert rows["usage_agg_30d"] == file_rows(folder / USAGE) == 40
    with psycopg.connect(database_url) as conn:
        after = raw_checksums(conn)
        jan_only = {
            t.name: conn.execute(
                f"select count(*) from raw.{t.name} where as_of = %s", (JAN,)
            ).fetchone()[0]
            for t in LANDING_TABLES
        }
    assert jan_only == {t: before[t][0] for t in jan_only}
    assert after != before


def test_the_sensor_waits_for_a_file_being_written_then_reruns_a_changed_month(
    tmp_path, monkeypatch
):
    """The issue's case: usage_agg_30d.csv still being written when the sensor ticks."""
    monkeypatch.setenv("STREAMFLOW_LANDING_SETTLE_SECONDS", "1.5")
    landing = tmp_path / "landing"
    rows = clean_month(tuple(f"u{i}" for i in range(30)))
    usage_lines = rows.pop("usage_agg_30d")
    folder = write_month(landing, JAN, rows)
    defs = build_definitions(landing=LandingResource(path=str(landing)))
    header = ",".join(next(t for t in LANDING_TABLES if t.file == USAGE).column_names)

    def slow_writer():
        with (folder / USAGE).open("w") as out:
            out.write(header + "\n")
            for line in usage_lines:
                out.write(line + "\n")
                out.flush()
                time.sleep(0.1)

    cursors: dict = {}
    with dg.instance_for_test() as instance:
        writer = threading.Thread(target=slow_writer)
        writer.start()
        while writer.is_alive():  # ticks while the file grows: never a request
            assert evaluate(defs, instance, cursors).run_requests == []
            time.sleep(0.2)
        writer.join()
        assert evaluate(defs, instance, cursors).run_requests == []  # not settled yet
        time.sleep(1.6)
        first = evaluate(defs, instance, cursors)
        assert requested(first) == [("streamflow_monthly", JAN)]

        with (folder / USAGE).open("a") as out:  # a corrected file lands after the run
            out.write("u99,1.0,1.0,1,1,1\n")
        time.sleep(1.6)
        again = evaluate(defs, instance, cursors)
        assert requested(again) == [("streamflow_monthly", JAN)]
        assert again.run_requests[0].run_key != first.run_requests[0].run_key


def test_the_cli_refuses_a_truncated_month_before_running_anything(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    folder = write_month(landing, JAN, clean_month(tuple(f"u{i}" for i in range(10))))
    write_manifest(folder)
    cut_at_line(folder / USAGE, 4)
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STREAMFLOW_LANDING_DIR", str(landing))
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1
    assert f"{USAGE}: 3 rows, {MANIFEST} says 10" in result.output
    assert "Nothing was run" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "home" / "postgres").exists()  # not even the database was started
