"""`streamflow serve --workers N` as a real process on the real stack (PostgreSQL marts and
Feast online store, MLflow registry): /metrics sums the workers' counts whichever worker
answers, and carries the process and garbage-collector series; --workers 1 as before."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.serving.api_support import TOKEN, Stack, build_stack, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3000)]

REQUESTS = 30
SCRAPES = 8  # fresh connections: the kernel hands them to either worker
PREDICT_200 = re.compile(
    r'^streamflow_requests_total\{endpoint="/predict/\{user_id\}",method="GET",status="200"\} '
    r"(\S+)$",
    re.M,
)
PROCESS_PID = re.compile(r'^process_resident_memory_bytes\{pid="(\d+)"\} \S+$', re.M)


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Stack:
    return build_stack(pg_server.url("postgres"), tmp_path_factory.mktemp("workers"))


class Served:
    def __init__(self, stack: Stack, home: Path, workers: int):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("STREAMFLOW_", "PROMETHEUS_")) and k != "MLFLOW_TRACKING_URI"
        }
        env.update(
            STREAMFLOW_HOME=str(home),
            STREAMFLOW_DATABASE_URL=stack.database_url,
            MLFLOW_TRACKING_URI=stack.tracking_uri,
            STREAMFLOW_API_TOKEN=TOKEN,
        )
        self.log = home / "serve.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamflow_dagster.cli.main", "serve"]
            + ["--port", self.url.rsplit(":", 1)[1], "--workers", str(workers)]
            + ["--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def ready_pids(self, wanted: int, timeout: float = 1200) -> set[int]:
        """Pids of workers that answered /ready 200, polled on fresh connections."""
        pids: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(pids) < wanted:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"ready: {pids}\n{self.log.read_text()}"
            try:
                ready = httpx.get(f"{self.url}/ready", timeout=10)
                if ready.status_code == 200:
                    pids.add(ready.json()["worker"]["pid"])
                    continue
            except httpx.HTTPError:
                pass  # the port is not open yet
            time.sleep(0.3)
        return pids

    def metrics(self) -> str:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def predictions_counted(text: str) -> float:
    match = PREDICT_200.search(text)
    return float(match.group(1)) if match else 0.0


def test_two_workers_sum_their_counts_in_metrics(stack, tmp_path):
    stale = tmp_path / "serving" / "metrics-multiproc"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left by an earlier run")
    served = Served(stack, tmp_path, workers=2)
    try:
        workers = served.ready_pids(2)  # both workers loaded the model and answer
        users = stack.online_users[:REQUESTS]
        for user in users:  # a fresh connection each: spread over the two workers
            assert httpx.get(f"{served.url}/predict/{user}", timeout=30).status_code == 200
        scrapes = [served.metrics() for _ in range(SCRAPES)]
        split = httpx.put(
            f"{served.url}/admin/split",
            json={"challenger_alias": "x", "challenger_share": 0.5},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
    finally:
        served.stop()
    assert len(workers) == 2
    for text in scrapes:  # whichever worker answered: the total over both
        assert predictions_counted(text) == REQUESTS
        assert set(map(int, PROCESS_PID.findall(text))) == workers  # one series per worker
        assert re.search(r'^python_gc_collections_total\{generation="0"\} \S+$', text, re.M)
        assert re.search(r"^python_gc_objects_collected_total\{", text, re.M)
        versions = re.findall(r'^streamflow_model_version\{.*"production"\} (\S+)$', text, re.M)
        assert versions == ["1.0", "1.0"]  # each worker's own loaded version
    assert "counter_999999.db" not in {p.name for p in stale.iterdir()}  # emptied at start
    assert split.status_code == 409 and "2 workers" in split.json()["error"]


def test_one_worker_serves_its_own_registry_with_process_and_gc_series(stack, tmp_path):
    served = Served(stack, tmp_path, workers=1)
    try:
        (pid,) = served.ready_pids(1)
        for user in stack.online_users[:5]:
            assert httpx.get(f"{served.url}/predict/{user}", timeout=30).status_code == 200
        text = served.metrics()
    finally:
        served.stop()
    assert predictions_counted(text) == 5
    assert re.search(r"^process_resident_memory_bytes \S+$", text, re.M)  # no pid label
    assert re.search(r'^python_gc_collections_total\{generation="0"\} \S+$', text, re.M)
    assert not (tmp_path / "serving" / "metrics-multiproc").exists()  # no multiprocess files
    assert pid == served.process.pid  # the CLI process itself serves
