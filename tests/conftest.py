"""Shared fixtures: one real embedded PostgreSQL for the session, a database per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

# Landing months without a manifest are read once unchanged this long (README, "Landing"): the
# tests write their files and read them at once, so no settle time unless a test sets one.
os.environ.setdefault("STREAMFLOW_LANDING_SETTLE_SECONDS", "0")


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory) -> Path:
    """A STREAMFLOW_HOME for the test session (its own PostgreSQL server and state)."""
    home = Path(os.environ.get("STREAMFLOW_TEST_HOME") or tmp_path_factory.mktemp("home"))
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
