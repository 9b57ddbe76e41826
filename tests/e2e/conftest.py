"""Fixtures for the browser tour: Debian's chromium, a small real state, the UI, dbt docs.

Everything here is real: the embedded PostgreSQL, dbt, Feast and MLflow run through
`streamflow run` on the local deployment it starts (code server and daemon), and the UI is
that deployment's webserver, started as `make dev` does (`streamflow deploy start --ui`).
Screenshots always go to the test's tmp dir; with STREAMFLOW_SCREENSHOTS=1 they are also
copied to docs/screenshots (the README's pictures), so an ordinary `make test` never changes
files of the repo.
"""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamflow_dagster.landing.completeness import write_manifest
from streamflow_dagster.platform.mlflow_server import without_job_runner

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
CHROMIUM = Path("/usr/bin/chromium")
README_SCREENSHOTS = ROOT / "docs" / "screenshots"

GOOD_MONTHS = ["2024-01-31", "2024-02-29"]
BAD_MONTH = "2024-03-31"  # one subscription in ten has a negative fee: reject_rate blocks
DEMO_USERS = 300
# With this seed both good months have enough churners (25, 26) to train a model.
DEMO_SEED = "55"

# Never let Playwright fetch a browser of its own; the test drives Debian's chromium.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get by tests/e2e/install_chromium.sh if missing."""
    if not os.access(CHROMIUM, os.X_OK):
        done = subprocess.run(
            ["bash", str(Path(__file__).with_name("install_chromium.sh"))],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
            pytest.fail(
                f"The browser test needs Debian's chromium at {CHROMIUM} and could not "
                f"install it:\n{done.stderr.strip()}",
                pytrace=False,
            )
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def streamflow_env(home: Path) -> dict[str, str]:
    """The environment of a user whose state is `home` (and nothing from other tests)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STREAMFLOW_", "DAGSTER_", "MLFLOW_", "PG"))
    }
    env.update(STREAMFLOW_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    return env


def streamflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "streamflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )


def make_month_bad(subscriptions_csv: Path) -> int:
    """Negate the fee of every tenth subscription: 10% rejects, over the 2% threshold."""
    with subscriptions_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows[::10]:
        row["monthly_fee"] = f"-{row['monthly_fee']}"
    with subscriptions_csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows[::10])


# How long a server may take to answer after `servers` started it. Alone the tour's servers
# answer within a minute or two; under `make test` the tour shares two cores with two other
# pytest workers running whole months, and 240 s was seen to run out there.
SERVER_START_S = 900


@pytest.fixture(scope="session")
def ui_ports() -> dict[str, int]:
    """The ports the Dagster UI and the MLflow UI will serve on, known before the months run:
    the links each writes into the other (STREAMFLOW_*_UI_URL) point there."""
    return {"dagster": free_port(), "mlflow": free_port()}


@pytest.fixture(scope="session")
def ui_state(server_home, ui_ports) -> Iterator[dict[str, str]]:
    """A fresh STREAMFLOW_HOME: two good months through the graph and one that fails landing."""
    home = server_home("ui")
    env = streamflow_env(home)
    env.update(
        STREAMFLOW_DAGSTER_UI_URL=f"http://127.0.0.1:{ui_ports['dagster']}",
        STREAMFLOW_MLFLOW_UI_URL=f"http://127.0.0.1:{ui_ports['mlflow']}",
    )
    months = str(len(GOOD_MONTHS) + 1)
    written = streamflow(
        env, "demo-data", "--users", str(DEMO_USERS), "--months", months, "--seed", DEMO_SEED
    )
    assert written.returncode == 0, written.stderr
    make_month_bad(home / "landing" / BAD_MONTH / "subscriptions.csv")
    # The export is complete, its content bad: the manifest is written again, last, as an
    # exporter would (otherwise the month is refused as incomplete before any check runs).
    write_manifest(home / "landing" / BAD_MONTH)
    try:
        ran = streamflow(env, "run")
        # The bad month fails (exit 1) and says why; the good months are materialized.
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert f"{BAD_MONTH} check failed: raw_subscriptions / reject_rate" in ran.stdout
        assert "2 of 3 month(s) materialized" in ran.stdout, ran.stdout
        yield env
    finally:
        streamflow(env, "deploy", "stop")
        streamflow(env, "db", "stop")


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


@dataclass
class Server:
    """A command running in its own process group (its log in `log`), serving `url`."""

    command: list[str]
    url: str
    log: Path
    proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not _serving(self.url):
            failed = self.proc.poll() not in (None, 0)  # `deploy start` exits 0 once started
            if failed or time.monotonic() > deadline:
                tail = "\n".join(self.log.read_text().splitlines()[-30:])
                pytest.fail(f"{' '.join(self.command)} did not serve {self.url}:\n{tail}")
            time.sleep(1)
        return self.url

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL whatever of the group is left once the leader is
        gone or after 30 s. (`deploy start` has long exited: its webserver runs in its own
        session and stops with `streamflow deploy stop`.)"""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass  # already gone, or stuck: SIGKILL below either way
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the whole group exited on SIGTERM
        self.proc.wait()


def mlflow_ui_command(env: dict[str, str]) -> list[str]:
    """`streamflow model ui`'s `mlflow ui` on the state's store, at STREAMFLOW_MLFLOW_UI_URL's
    port, with one worker instead of four (the UI shares two cores)."""
    printed = streamflow(env, "model", "ui", "--print-only")
    assert printed.returncode == 0, printed.stderr
    args = shlex.split(printed.stdout.strip().splitlines()[0])
    assert args[:2] == ["mlflow", "ui"] and "***" not in printed.stdout, printed.stdout
    return [str(BIN / "mlflow"), *args[1:], "--workers", "1"]


@pytest.fixture(scope="session")
def servers(ui_state, ui_ports, tmp_path_factory) -> Iterator[dict[str, Server]]:
    """The deployment's webserver (as `make dev` starts it), `streamflow docs`,
    `streamflow serve` and the MLflow UI (`streamflow model ui`), started side by side.

    Each takes tens of seconds to come up; starting them together overlaps that wait.
    `streamflow deploy start --ui` returns once the webserver is started (it runs on, in its
    own session, until `streamflow deploy stop` in ui_state's teardown).
    """
    logs = tmp_path_factory.getbasetemp()
    dagster_port, docs_port, api_port = ui_ports["dagster"], free_port(), free_port()
    started = {
        "dagster": Server(
            [str(BIN / "streamflow"), "deploy", "start", "--ui", str(dagster_port)],
            f"http://127.0.0.1:{dagster_port}/server_info",
            logs / "deploy-start.log",
        ),
        "docs": Server(
            [str(BIN / "streamflow"), "docs", "--port", str(docs_port)],
            f"http://127.0.0.1:{docs_port}/",
            logs / "dbt-docs.log",
        ),
        "api": Server(
            [str(BIN / "streamflow"), "serve", "--port", str(api_port)],
            f"http://127.0.0.1:{api_port}/health",
            logs / "api.log",
        ),
        "mlflow": Server(
            mlflow_ui_command(ui_state),
            f"{ui_state['STREAMFLOW_MLFLOW_UI_URL']}/health",
            logs / "mlflow-ui.log",
        ),
    }
    try:
        for name, server in started.items():
            # `mlflow ui` as `streamflow model ui` runs it: without MLflow's job runner (its
            # eight huey consumers took CPU from the other tests for the tour's whole length)
            server.start(without_job_runner(dict(ui_state)) if name == "mlflow" else ui_state)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def dagster_ui(servers) -> str:
    """The Dagster UI's base URL, once the webserver answers."""
    return servers["dagster"].wait(timeout=SERVER_START_S).removesuffix("/server_info")


@pytest.fixture(scope="session")
def dbt_docs(servers) -> str:
    """The dbt docs site, generated from the live warehouse by `streamflow docs`."""
    return servers["docs"].wait(timeout=SERVER_START_S)


@pytest.fixture(scope="session")
def online_api(servers) -> str:
    """The online API's base URL, once it answers (its port opens with the model loaded)."""
    return servers["api"].wait(timeout=SERVER_START_S).removesuffix("/health")


@pytest.fixture(scope="session")
def mlflow_ui(servers) -> str:
    """The MLflow UI's base URL (STREAMFLOW_MLFLOW_UI_URL, where Dagster's links point)."""
    return servers["mlflow"].wait(timeout=SERVER_START_S).removesuffix("/health")


# The Dagster UI greets a new instance with a "join the community" dialog over the page.
SKIP_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', JSON.stringify('1'))"


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def page(browser, request, tmp_path_factory):
    """A fresh browser tab; when the test fails, what it showed is saved next to the logs."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.add_init_script(SKIP_COMMUNITY_DIALOG)
    # Generous: the UI shares two cores with the code server, the daemon and PostgreSQL.
    context.set_default_timeout(120_000)
    page = context.new_page()
    yield page
    if getattr(request.node, "call_failed", False):
        page.screenshot(path=str(tmp_path_factory.getbasetemp() / f"{request.node.name}.png"))
    context.close()


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory):
    """save(page, name): a PNG in the tmp dir, and in docs/screenshots when asked to."""
    folder = tmp_path_factory.mktemp("screenshots")
    publish = os.environ.get("STREAMFLOW_SCREENSHOTS") == "1"

    def save(page, name: str) -> Path:
        path = folder / name
        page.screenshot(path=str(path))
        if publish:
            README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_SCREENSHOTS / name)
        return path

    return save
