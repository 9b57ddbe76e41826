"""The `streamflow` command line: help everywhere, the embedded server, clear errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamflow_dagster.cli.main import main
from streamflow_dagster.landing.contract import LANDING_TABLES

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(monkeypatch, server_home):
    home = server_home("cli")  # the state folder itself: the platform opens it
    monkeypatch.setenv("STREAMFLOW_HOME", str(home))
    monkeypatch.delenv("STREAMFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("STREAMFLOW_LANDING_DIR", raising=False)
    return home


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["run"],
        ["demo-data"],
        ["db"],
        ["db", "start"],
        ["db", "stop"],
        ["db", "status"],
        ["db", "url"],
        ["docs"],
    ],
)
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output


def test_db_lifecycle(cli_env):
    assert invoke("db", "status").exit_code == 1  # nothing started yet
    started = invoke("db", "start")
    assert started.exit_code == 0 and "PostgreSQL running" in started.output
    url = invoke("db", "url").output.strip()
    assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/streamflow")
    assert "running: pid" in invoke("db", "status").output
    assert invoke("db", "stop").output.strip() == "PostgreSQL stopped"
    assert invoke("db", "status").exit_code == 1


def test_demo_data_is_deterministic(tmp_path):
    for out in ("a", "b"):
        result = invoke(
            "demo-data",
            "--users",
            "200",
            "--months",
            "2",
            "--seed",
            "3",
            "--out",
            str(tmp_path / out),
        )
        assert result.exit_code == 0 and "Wrote 2 month(s)" in result.output
    files = {
        out: sorted(p.relative_to(tmp_path / out) for p in (tmp_path / out).rglob("*.csv"))
        for out in ("a", "b")
    }
    # Two months of every landing file; an empty comparison would pass whatever was written.
    assert len(files["a"]) == 2 * len(LANDING_TABLES) and files["a"] == files["b"]
    for path in files["a"]:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()


def test_run_without_landing_data_says_what_to_do(cli_env):
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code != 0
    assert "No month folders" in result.output and "streamflow demo-data" in result.output


def test_run_reports_each_folder_that_is_not_a_month_with_its_reason(
    cli_env, tmp_path, monkeypatch
):
    landing = tmp_path / "landing"
    for name in ("2024-02-30", "2023-12-31", "2999-12-31"):
        (landing / name).mkdir(parents=True)
    monkeypatch.setenv("STREAMFLOW_LANDING_DIR", str(landing))
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code != 0  # no month left to run: said, with what to do
    assert "No month folders" in result.output
    said = result.stderr
    assert (
        f"Skipping landing folder {landing / '2024-02-30'}: not a month partition: "
        "AS_OF '2024-02-30' is not an ISO date like 2024-01-31"
    ) in said
    assert f"{landing / '2023-12-31'}: not a month partition: before the first month" in said
    assert "STREAMFLOW_FIRST_MONTH" in said
    assert f"{landing / '2999-12-31'}: not a month partition: the month 2999-12-31" in said


def test_run_with_a_bad_window_names_it(cli_env):
    (cli_env / "landing" / "2024-01-31").mkdir(parents=True)
    result = CliRunner().invoke(main, ["run", "--months", "2024-02-30..2024-03-31"])
    assert result.exit_code == 2
    assert "--months" in result.output and "2024-02-30" in result.output


def test_demo_data_with_a_start_that_is_not_a_month_end(tmp_path):
    result = CliRunner().invoke(
        main, ["demo-data", "--start", "2024-01-15", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "last day of a month" in result.output
    assert not any(tmp_path.iterdir())  # nothing written
