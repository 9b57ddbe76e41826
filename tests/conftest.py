"""Shared fixtures: one real embedded PostgreSQL for the session, a database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

# Landing months without a manifest are read once unchanged this long (README, "Landing"): the
# tests write their files and read them at once, so no settle time unless a test sets one.
os.environ.setdefault("STREAMFLOW_LANDING_SETTLE_SECONDS", "0")


# The test files that take longest, slowest first: `make test` runs files in parallel
# workers (pytest-xdist, --dist loadfile, in collection order), and a long file started last
# would run alone at the end. Measured per file (--durations); the rest keep their order.
SLOW_FILES = [
    "tests/integration/defs/test_backfill_concurrency.py",
    "tests/integration/cli/test_telco_end_to_end.py",
    "tests/e2e/test_ui_tour.py",
    # each starts its own servers and deployment and runs whole months (celery: 513 s alone)
    "tests/integration/package/test_installed_package.py",
    "tests/integration/platform/test_celery_executor.py",
    "tests/integration/platform/test_deployment.py",
    "tests/integration/platform/test_external_postgres.py",
    "tests/integration/platform/test_mlflow_server.py",
    "tests/integration/platform/test_redis_online_store.py",
    "tests/integration/ml/test_month_order.py",
    "tests/integration/cli/test_demo_alerts.py",
    # the unit files that train models (CPU: minutes at load 25, tens of seconds quiet)
    "tests/unit/serving/test_explain.py",
    "tests/unit/ml/test_training.py",
    "tests/unit/serving/test_serving.py",
    "tests/unit/serving/test_failures.py",
]


def pytest_collection_modifyitems(config, items) -> None:
    """The SLOW_FILES first, in their order; every other test keeps its place."""
    rank = {path: i for i, path in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_configure(config) -> None:
    """Parse the dbt project once, before test modules import the definitions (which never
    parse; a stale manifest would fail them with a message saying so). Under pytest-xdist
    the workers do it (one parses, the others wait on its lock and find it fresh), so the
    controller starts them without first importing dagster-dbt."""
    _one_apt_get_at_a_time()
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    from streamflow_dagster.defs.dbt_project import prepare_manifest

    prepare_manifest()


def _one_apt_get_at_a_time() -> None:
    """Tests install Debian packages when missing (chromium, redis-server, postgresql), and
    parallel workers may do it at the same moment; apt-get fails at once on a lock another
    apt-get holds. An `apt-get` first on PATH waits for its turn on one lock file instead.
    Made by the first process (workers inherit PATH); a no-op where there is no apt-get."""
    real = shutil.which("apt-get")
    if real is None or not shutil.which("flock") or os.environ.get("STREAMFLOW_TEST_APT_WRAPPER"):
        return
    folder = Path(tempfile.mkdtemp(prefix="streamflow-tests-apt-"))
    lock = Path(tempfile.gettempdir()) / "streamflow-tests-apt.lock"
    wrapper = folder / "apt-get"
    wrapper.write_text(f'#!/bin/sh\nexec flock "{lock}" "{real}" "$@"\n')
    wrapper.chmod(0o755)
    os.environ["STREAMFLOW_TEST_APT_WRAPPER"] = str(wrapper)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    _made_here.append(folder)


_made_here: list[Path] = []


def pytest_unconfigure(config) -> None:
    for folder in _made_here:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def server_home():
    """Makes a STREAMFLOW_HOME whose embedded server can start when the tests run as root.

    As root the server runs as another user, which the platform lets into the state folder
    but no further up. pytest's temp folders are private (0700), and every pytest session of
    the same user makes its shared root private again, so a home under tmp_path would not be
    reachable. These homes are made in the system temp folder instead (/tmp: anyone may enter)
    and removed when the session ends.
    """
    made: list[Path] = []

    def make(name: str) -> Path:
        home = Path(tempfile.mkdtemp(prefix=f"streamflow-test-{name}-"))
        made.append(home)
        return home

    yield make
    for home in made:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_home(server_home) -> Path:
    """A STREAMFLOW_HOME for the test session (its own PostgreSQL server and state)."""
    given = os.environ.get("STREAMFLOW_TEST_HOME")
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `make test`
    if given:  # each parallel worker its own server and state
        home = Path(f"{given}-{worker}") if worker else Path(given)
    else:
        home = server_home(f"session-{worker}" if worker else "session")
    os.environ["STREAMFLOW_HOME"] = str(home)
    os.environ.pop("STREAMFLOW_DATABASE_URL", None)
    return home


@pytest.fixture(scope="session")
def pg_server(stack_home):
    """The real embedded PostgreSQL, started the way the platform starts it."""
    from streamflow_dagster.platform.embedded_pg import EmbeddedPostgres

    server = EmbeddedPostgres(stack_home / "postgres")
    status = server.start()
    yield status
    server.stop()


@pytest.fixture
def database_url(pg_server) -> str:
    """A fresh database on the session's server, so tests never see each other's rows."""
    from streamflow_dagster.platform.db import ensure_database

    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_database(pg_server.url("postgres"), name)
    return pg_server.url(name)
