"""Faults of PostgreSQL itself, each on a server of its own: killed, stopped and started,
unreachable, stale or damaged state files, an online swap cut short."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from streamflow_dagster.cli.main import main
from streamflow_dagster.features.online import materialize_month
from streamflow_dagster.features.online_tables import STAGE_PREFIX, build_stage
from streamflow_dagster.features.specs import online_views
from streamflow_dagster.platform.embedded_pg import EmbeddedPostgres
from tests.integration.features.test_online import ONLINE_SCHEMA, applied_store, online_rows
from tests.integration.helpers import write_month
from tests.integration.landing.test_ingestion import JAN, clean_month, materialize

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture
def own_server(fault_home):
    """An embedded server of this test alone, so killing it touches nothing else."""
    server = EmbeddedPostgres(fault_home / "pg")
    yield server
    server.stop()


def kill_server(server: EmbeddedPostgres) -> None:
    """SIGKILL the postmaster and every process it forked: a power cut, as far as PostgreSQL
    can tell (nothing gets to flush anything)."""
    pid = server.status().pid
    children = [
        int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid
    ]
    for victim in [pid, *children]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_committed_row_survives_a_crash(own_server):
    status = own_server.start()
    with psycopg.connect(status.url(), autocommit=True) as conn:
        assert conn.execute("show synchronous_commit").fetchone()[0] == "on"
        assert conn.execute("show fsync").fetchone()[0] == "on"
        conn.execute("create table months (as_of date primary key, rows bigint)")
    with psycopg.connect(status.url()) as conn:  # one committed transaction, then the crash
        conn.execute(
            "insert into months select d::date, 1 from generate_series("
            "'2000-01-31'::date, '2030-12-31', '1 month') d"
        )
        conn.commit()
        kill_server(own_server)
    again = own_server.start()
    assert again.port == status.port
    with psycopg.connect(again.url()) as conn:
        assert conn.execute("select count(*) from months").fetchone()[0] == 372


def test_the_port_is_kept_and_a_taken_port_is_named(own_server):
    first = own_server.start()
    own_server.stop()
    assert own_server.start().port == first.port
    kill_server(own_server)  # a crash leaves postmaster.pid behind: still the same port
    assert own_server.start().port == first.port
    own_server.stop()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        with pytest.raises(RuntimeError, match=f"Port {first.port}.*taken by another process"):
            own_server.start()


def test_db_status_sees_through_a_reused_pid_and_a_damaged_server_json(fault_home, monkeypatch):
    tmp_path = fault_home
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("STREAMFLOW_DATABASE_URL", raising=False)
    server = EmbeddedPostgres(tmp_path / "postgres")
    port = server.start().port
    try:
        kill_server(server)
        impostor = subprocess.Popen(["sleep", "120"])  # the old pid, reused by something else
        try:
            pid_file = server.data_dir / "postmaster.pid"
            lines = pid_file.read_text().splitlines()
            pid_file.write_text("\n".join([str(impostor.pid), *lines[1:]]) + "\n")
            (tmp_path / "postgres" / "server.json").write_text("")
            status = CliRunner().invoke(main, ["db", "status"])
            assert status.exit_code == 1 and status.output.count("stopped") == 1, status.output
            assert "server.json was damaged" in status.output
            assert f"port {port}" in status.output  # repaired from where it last listened
            started = CliRunner().invoke(main, ["db", "start"])
            assert started.exit_code == 0, started.output
            assert f":{port}/" in started.output
        finally:
            impostor.kill()
            impostor.wait()
    finally:
        server.stop()


def test_an_unreachable_database_fails_the_step_within_60_s_saying_what_to_do(tmp_path):
    """A host that takes the connection and never answers (a firewall, a hung server)."""
    write_month(tmp_path / "landing", JAN, clean_month())
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen()
        url = f"postgresql://postgres@127.0.0.1:{blackhole.getsockname()[1]}/streamflow"
        started = time.monotonic()
        result = materialize(tmp_path, url, JAN, raise_on_error=False)
        elapsed = time.monotonic() - started
    assert not result.success and elapsed < 60
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    while error.cause is not None:  # the asset's own error, as the CLI shows it
        error = error.cause
    message = error.message
    assert failure.step_key == "landing_ingestion"
    assert "PostgreSQL (warehouse database, 127.0.0.1:" in message and "unreachable" in message
    assert "run the month again" in message


def test_stage_tables_of_an_interrupted_swap_are_dropped_by_the_next_write(demo_marts):
    url, months = demo_marts
    store = applied_store(url)
    views = online_views(store)
    newest = date.fromisoformat(months[-1])
    materialize_month(url, views, ONLINE_SCHEMA, newest)
    expected = online_rows(url, views)
    with psycopg.connect(url) as conn:  # the stages were built, then the process died
        for number, view in enumerate(views):
            build_stage(conn, view, ONLINE_SCHEMA, newest, number)
    assert _stages(url)

    write = materialize_month(url, views, ONLINE_SCHEMA, date.fromisoformat(months[0]))
    assert not write.written  # an older month: nothing written, yet the leftovers are gone
    assert _stages(url) == []
    assert online_rows(url, views) == expected


def _stages(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "select tablename from pg_tables where schemaname = %s and "
                "starts_with(tablename, %s)",
                (ONLINE_SCHEMA, STAGE_PREFIX),
            )
        ]


def test_the_cli_against_an_unreachable_database_says_what_failed(tmp_path):
    """What an operator sees in the terminal: the service, what it was doing and what to do.
    The CLI now meets the database first while starting the deployment (the instance's
    storage lives there), so the message names that stage, before any step runs."""
    from streamflow_dagster.landing.demo_data import generate_landing

    landing = tmp_path / "landing"
    generate_landing(landing, users=50, months=1, seed=3)
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen()
        port = blackhole.getsockname()[1]
        env = {
            **os.environ,
            "STREAMFLOW_HOME": str(tmp_path / "home"),
            "STREAMFLOW_LANDING_DIR": str(landing),
            "STREAMFLOW_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/streamflow",
        }
        env.pop("DAGSTER_HOME", None)
        started = time.monotonic()
        run = subprocess.run(
            [str(Path(sys.executable).parent / "streamflow"), "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 1 and elapsed < 120, (elapsed, output)
    assert f"127.0.0.1:{port}) is unreachable" in output
    assert "Starting the warehouse (external PostgreSQL)" in output
    assert "STREAMFLOW_DATABASE_URL is up and reachable" in output
    assert "Traceback" not in output


def test_a_database_killed_during_ingestion_leaves_no_partial_month(tmp_path, own_server):
    """SIGKILL while the month's transaction is open (held at a lock, so the kill lands
    inside it every time): nothing of the month, the other month byte-identical, a message
    naming the database, and the month whole after a restart and a rerun."""
    import threading

    from tests.integration.helpers import raw_checksums

    status = own_server.start()
    url = status.url("postgres")
    write_month(tmp_path / "landing", JAN, clean_month())
    materialize(tmp_path, url, JAN)
    with psycopg.connect(url) as conn:
        before = raw_checksums(conn)
    feb_ids = tuple(f"f{i}" for i in range(50))
    write_month(tmp_path / "landing", "2024-02-29", clean_month(feb_ids))

    blocker = psycopg.connect(url)
    blocker.execute("lock table raw.subscriptions in access exclusive mode")

    def kill_once_ingestion_waits():
        with psycopg.connect(url, autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                    "and query ilike '%%raw%%subscriptions%%'"
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.05)
        kill_server(own_server)

    killer = threading.Thread(target=kill_once_ingestion_waits)
    killer.start()
    result = materialize(tmp_path, url, "2024-02-29", raise_on_error=False)
    killer.join()
    blocker.close()
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    while error.cause is not None:
        error = error.cause
    assert f"PostgreSQL (warehouse database, 127.0.0.1:{status.port}) is unreachable" in (
        error.message
    ), error.message

    own_server.start()  # same port: the URL above still works
    with psycopg.connect(url) as conn:
        assert raw_checksums(conn) == before  # no partial February, January byte-identical
    assert materialize(tmp_path, url, "2024-02-29").success
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "select count(*) from raw.usage_agg_30d where as_of = '2024-02-29'"
        ).fetchone()[0]
    assert counts == len(feb_ids)
