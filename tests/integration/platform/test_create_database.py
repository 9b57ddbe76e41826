"""Creating a database from several processes at once, on the real embedded server.

Three `streamflow run` started together each create the `dagster` database; in CI one of them
failed on `duplicate key value violates unique constraint "pg_database_datname_index"`.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait

import psycopg

from streamflow_dagster.platform.db import ensure_database


def database_exists(server_url: str, name: str) -> bool:
    with psycopg.connect(server_url) as conn:
        return bool(
            conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        )


def test_creation_waits_for_a_process_that_is_creating_the_same_database(pg_server):
    server_url = pg_server.url("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as other:
        # Another process is between its check and its CREATE DATABASE: it holds the lock.
        other.execute("select pg_advisory_lock(hashtext(%s))", (f"streamflow:create:{name}",))
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(ensure_database, server_url, name)
            done, _ = wait([waiting], timeout=1.0)
            assert not done, "ensure_database did not wait for the process holding the lock"
            other.execute(f'create database "{name}"')
            other.execute("select pg_advisory_unlock(hashtext(%s))", (f"streamflow:create:{name}",))
            assert waiting.exception(timeout=30) is None
    assert database_exists(server_url, name)


def test_many_processes_create_one_database_without_an_error(pg_server):
    server_url = pg_server.url("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        ensure_database(server_url, name)

    with ThreadPoolExecutor(6) as pool:
        results = [pool.submit(create) for _ in range(6)]
        errors = [f.exception(timeout=60) for f in results]
    assert errors == [None] * 6
    assert database_exists(server_url, name)
