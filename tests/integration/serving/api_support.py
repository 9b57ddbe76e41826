"""The real stack behind the API tests (no tests here): marts, Feast online store, MLflow.

One database per test module: two demo months in the marts, Feast applied and the newest month
online; an MLflow database with one model version per month, v1 in `production`. The API runs
in a real uvicorn server on a loopback port; `Outage` is a TCP relay in front of PostgreSQL
that can be cut and restored, to take the store away from the API without touching others.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import psycopg
import uvicorn
from mlflow.tracking import MlflowClient

from streamflow_dagster.features.online import materialize_month
from streamflow_dagster.features.registry import apply_repo
from streamflow_dagster.features.specs import online_views
from streamflow_dagster.features.store import feature_store, prepare_feature_database
from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.month import train_month
from streamflow_dagster.ml.registry import PRODUCTION_ALIAS, set_alias
from streamflow_dagster.platform.db import ensure_database, with_database
from streamflow_dagster.platform.mlflow_store import fluent_store
from streamflow_dagster.platform.settings import FEATURE_REPO_DIR
from streamflow_dagster.serving.app import STARTUP_WAIT_S, create_app
from streamflow_dagster.serving.service import MlflowAliases, Service
from streamflow_dagster.serving.split import Split
from tests.integration.conftest import create_marts, insert_rows, load_landing_month
from tests.integration.ml.support import fresh_mlflow_store, training_frame

USERS = 1500
ONLINE_SCHEMA = "feast_online"
PROFILE_ONLY_USER = "profile-only"  # in the newest month's profile mart only
TOKEN = "test-token-123"


@dataclass
class Stack:
    server_url: str
    database_url: str
    tracking_uri: str
    client: MlflowClient
    months: list[str]
    online_users: list[str]  # users of the newest month (online)
    gone_users: list[str]  # in the first month only: no online features


def build_stack(server_url: str, folder: Path) -> Stack:
    summaries = generate_landing(folder / "landing", users=USERS, months=2, seed=11)
    months = [s.as_of.isoformat() for s in summaries]
    name = f"api_{uuid.uuid4().hex[:10]}"
    ensure_database(server_url, name)
    url = with_database(server_url, name)
    with psycopg.connect(url) as conn:
        create_marts(conn)
        for month in months:
            load_landing_month(conn, folder / "landing" / month, month)
        insert_rows(
            conn,
            "subscriptions_profile_snapshots",
            pd.DataFrame(
                {"user_id": [PROFILE_ONLY_USER], "as_of": [months[-1]], "months_active": [2]}
            ),
        )
    prepare_feature_database(url)
    store = feature_store(url)
    apply_repo(store, FEATURE_REPO_DIR)
    materialize_month(url, online_views(store), ONLINE_SCHEMA, date.fromisoformat(months[-1]))
    with psycopg.connect(url) as conn:
        online = [
            row[0]
            for row in conn.execute(
                "select user_id from marts.usage_agg_30d_snapshots where as_of = %s "
                "order by user_id",
                (months[-1],),
            )
        ]
        gone = [
            row[0]
            for row in conn.execute(
                "select user_id from marts.subscriptions_profile_snapshots where as_of = %s "
                "except select user_id from marts.subscriptions_profile_snapshots "
                "where as_of = %s order by 1",
                (months[0], months[-1]),
            )
        ]
    mlflow_store = fresh_mlflow_store(server_url, folder / "artifacts")
    client = MlflowClient(
        tracking_uri=mlflow_store.tracking_uri, registry_uri=mlflow_store.tracking_uri
    )
    with fluent_store(mlflow_store):
        for month in months:
            with mlflow.start_run(run_name=f"churn_model {month}"):
                train_month(
                    client,
                    training_frame(folder / "landing" / month),
                    as_of=month,
                    feature_service="churn_v1",
                    dagster_run_id=f"run-{month}",
                )
    set_alias(client, PRODUCTION_ALIAS, 1)
    return Stack(server_url, url, mlflow_store.tracking_uri, client, months, online, gone)


def make_service(
    database_url: str,
    tracking_uri: str,
    split: Split | None = None,
    token: str | None = TOKEN,
    reload_seconds: float = 0.5,
) -> Service:
    return Service(
        database_url, MlflowAliases(tracking_uri), split or Split(), reload_seconds, token
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningApi:
    """The app under uvicorn in a thread, on a loopback port, as `streamflow serve` runs it."""

    def __init__(self, service: Service, startup_wait_s: float = STARTUP_WAIT_S):
        self.service, self.startup_wait_s = service, startup_wait_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(service, startup_wait_s),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningApi:
        self.thread.start()
        # The port opens once the model and the store are loaded (or the startup wait ends).
        deadline = time.monotonic() + 30 + self.startup_wait_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, timeout: float = 60) -> dict:
        return wait_for(lambda: self._ready_body(), timeout, "the API to be ready")

    def _ready_body(self) -> dict | None:
        response = httpx.get(f"{self.url}/ready", timeout=10)
        return response.json() if response.status_code == 200 else None


def wait_for(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Outage:
    """A TCP relay to PostgreSQL; `cut()` closes it and every connection through it."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def url(self, url: str) -> str:
        return url.replace(f":{self.target_port}/", f":{self.port}/")

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would not.
                self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the other side
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # the relay was cut: the other pump sees it too
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already shut
