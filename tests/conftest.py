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


def pytest_configure(config) -> None:
    """Parse the dbt project once, before test modules import the definitions (which never
    parse; a stale manifest would fail them with a message saying so)."""
    from streamflow_dagster.defs.dbt_project import prepare_manifest

    prepare_manifest()


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
    home = Path(given) if given else server_home("session")
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
