"""The command line's manners: fast help, months as a user writes them, a busy port said
before anything loads, and a model status with a header row and rounded AUCs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamflow_dagster.cli.main import main
from streamflow_dagster.cli.model_status import RegistryStatus, format_auc, render_status
from streamflow_dagster.lib.as_of import months_window, parse_month

BIN = Path(sys.executable).parent
HEAVY = ("dagster", "pandas", "mlflow", "feast", "sklearn", "uvicorn", "psycopg")


# -- help ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command", [[], ["model"], ["model", "status"], ["serve"], ["docs"], ["import-telco"]]
)
def test_help_loads_no_heavy_package(command):
    probe = (
        "import sys\n"
        "from streamflow_dagster.cli.main import main\n"
        f"try:\n    main({[*command, '--help']!r})\n"
        "except SystemExit as done:\n    assert done.code == 0, done.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "Usage: " in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_is_fast():
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(BIN / "streamflow"), "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - started)
    # < 0.5 s on an idle machine (see the report); 2 s leaves room for a loaded CI box,
    # and is still far below the 3-5 s of loading Dagster and pandas.
    assert sorted(runs)[1] < 2.0, runs


# -- months ----------------------------------------------------------------------------------
def test_a_month_is_its_as_of_or_yyyy_mm():
    assert str(parse_month("2024-03")) == "2024-03-31"
    assert str(parse_month("2024-02")) == "2024-02-29"
    assert str(parse_month("2024-03-31")) == "2024-03-31"
    with pytest.raises(ValueError, match="month number must be 01 to 12"):
        parse_month("2024-13")
    with pytest.raises(ValueError, match=r"not the last day of its month.*YYYY-MM"):
        parse_month("2024-03-15")
    assert [str(m) for m in months_window("2024-03..2024-05")] == ["2024-03-31", "2024-05-31"]
    assert months_window("2024-03") == (parse_month("2024-03"), parse_month("2024-03"))
    assert months_window("..2024-05") == (None, parse_month("2024-05"))


def test_a_reversed_window_says_which_is_which():
    with pytest.raises(ValueError) as raised:
        months_window("2024-05..2024-03")
    assert str(raised.value).startswith("start 2024-05-31 is after end 2024-03-31")
    assert "2024-03-31..2024-05-31" in str(raised.value)


def test_run_months_window_errors_name_the_option(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STREAMFLOW_LANDING_DIR", raising=False)
    for month in ("2024-03-31", "2024-04-30"):
        (tmp_path / "home" / "landing" / month).mkdir(parents=True)
    reversed_window = CliRunner().invoke(main, ["run", "--months", "2024-04..2024-03"])
    assert reversed_window.exit_code == 2
    assert "--months" in reversed_window.output
    assert "start 2024-04-30 is after end 2024-03-31" in reversed_window.output
    missing = CliRunner().invoke(main, ["run", "--months", "2024-06"])
    assert missing.exit_code == 2 and "no landed month within 2024-06-30" in missing.output


def test_select_months_takes_a_month_as_yyyy_mm():
    from streamflow_dagster.cli.runner import select_months

    landed = ["2024-02-29", "2024-03-31", "2024-04-30"]
    assert select_months(landed, "2024-03") == ["2024-03-31"]
    assert select_months(landed, "2024-03..") == ["2024-03-31", "2024-04-30"]


# -- ports -----------------------------------------------------------------------------------
@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_serve_on_a_busy_port_stops_at_once_naming_it(busy_port, tmp_path):
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "streamflow"), "serve", "--port", str(busy_port)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "STREAMFLOW_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert result.returncode == 2
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr and "Traceback" not in result.stderr
    assert "API on" not in result.stdout and "Starting" not in result.stdout
    assert not (tmp_path / "home").exists()  # no database, nothing loaded
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("command", [["docs"], ["docs", "--no-generate"], ["model", "ui"]])
def test_docs_and_mlflow_ui_on_a_busy_port_stop_before_anything(
    command, busy_port, tmp_path, monkeypatch
):
    monkeypatch.setenv("STREAMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(main, [*command, "--port", str(busy_port)])
    assert result.exit_code == 2, result.output
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.output
    assert not isinstance(result.exception, OSError)
    assert not (tmp_path / "home").exists()  # no docs generated, no server started


# -- model status ----------------------------------------------------------------------------
def test_status_has_a_header_and_rounds_the_auc():
    status = RegistryStatus(
        aliases={"production": 2, "previous": None},
        tags={
            1: {"as_of": "2024-01-31", "holdout_auc": "0.873360", "checks": "passed"},
            2: {
                "as_of": "2024-02-29",
                "holdout_auc": "0.812345",
                "checks": "passed",
                "decision.action": "promote",
                "decision.reason": "beats v1",
            },
        },
        latest=[1, 2],
        auc={2: 0.81236},
    )
    lines = render_status(status)
    assert lines[:2] == ["production  v2 (2024-02-29)", "previous    none"]
    header = lines[3].split()
    assert header == ["version", "as_of", "holdout", "AUC", "checks", "decision"]
    assert lines[4].split() == ["v1", "2024-01-31", "0.8734", "passed"]  # the tag, rounded
    assert lines[5].split()[:4] == ["v2", "2024-02-29", "0.8124", "passed"]  # the run's metric
    assert lines[5].endswith("promote beats v1")
    assert format_auc(None, None) == "?" and format_auc(None, "n/a") == "?"


def test_status_of_an_empty_registry_says_what_to_do():
    lines = render_status(RegistryStatus({"production": None, "previous": None}, {}, [], {}))
    assert lines[-1] == "No version of streamflow_churn registered yet: run `streamflow demo`."
