"""Shared fixtures: one real embedded PostgreSQL for the session, a database per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def server_reachable(tmp_path_factory):
    """Opens pytest's own temp folders on the way to a STREAMFLOW_HOME for the embedded
    server's user (search only, o+x) when the tests run as root.

    pytest makes its temp folders private (0700), and as root the server runs as another
    user, which the platform lets into the state folder but no further up (it says what to
    run instead). These folders are the test run's, so the suite opens them itself; nothing
    outside pytest's temp root is touched.
    """
    base = tmp_path_factory.getbasetemp()
    top = base.parent if base.parent.name.startswith("pytest-of-") else base

    def open_for_server(path: Path) -> Path:
        if os.geteuid() == 0:
            for folder in [path, *path.parents]:
                if folder != top and top not in folder.parents:
                    break
                folder.chmod(folder.stat().st_mode | 0o001)
        return path

    return open_for_server


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory, server_reachable) -> Path:
    """A STREAMFLOW_HOME for the test session (its own PostgreSQL server and state)."""
    given = os.environ.get("STREAMFLOW_TEST_HOME")
    home = Path(given) if given else server_reachable(tmp_path_factory.mktemp("home"))
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
