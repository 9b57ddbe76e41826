"""A real MLflow server over a test's store, on a free port: what the UI's links open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streamflow_dagster.platform.mlflow_server import without_job_runner
from streamflow_dagster.platform.mlflow_store import MlflowStore

START_TIMEOUT_S = 120  # two shared cores: the server's imports alone take a while


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(store: MlflowStore, log: Path) -> Iterator[str]:
    """`mlflow server` on the store until the block ends; yields its base URL."""
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    args = [
        mlflow,
        "server",
        "--backend-store-uri",
        store.tracking_uri,
        "--default-artifact-root",
        store.artifact_root.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        server = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=without_job_runner(dict(os.environ)),
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass  # not listening yet
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}")
            time.sleep(1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
