"""Faults on the API's prediction log: one serving.prediction_log row per 200 from /predict.

The real stack of the API tests (marts, Feast online store, MLflow registry in the embedded
PostgreSQL) and a real uvicorn server; the database is taken away with the TCP relay of
tests/integration/serving/api_support.py (the API's only way to it), then given back.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from streamflow_dagster.serving.predlog import PredictionLog
from streamflow_dagster.serving.service import MlflowAliases, Service
from streamflow_dagster.serving.split import Split
from tests.integration.serving.api_support import (
    TOKEN,
    Outage,
    RunningApi,
    Stack,
    build_stack,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Stack:
    saved = dict(os.environ)  # Feast's store sets STREAMFLOW_PG_* and PGTZ
    yield build_stack(pg_server.url("postgres"), tmp_path_factory.mktemp("faults_api"))
    os.environ.clear()
    os.environ.update(saved)


def _service(database_url: str, stack: Stack, spool: Path | None = None) -> Service:
    return Service(
        database_url, MlflowAliases(stack.tracking_uri), Split(), 0.5, TOKEN, spool_dir=spool
    )


def _logged(stack: Stack, user_ids: list[str]) -> int:
    with psycopg.connect(stack.database_url) as conn:
        exists = conn.execute("select to_regclass('serving.prediction_log')").fetchone()[0]
        if exists is None:
            return 0
        return conn.execute(
            "select count(*) from serving.prediction_log where user_id = any(%s)", (user_ids,)
        ).fetchone()[0]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_concurrent_requests_for_one_user_are_logged_once_each(stack):
    user = stack.online_users[1]
    before = _logged(stack, [user])
    barrier = threading.Barrier(32)
    codes: list[int] = []

    def ask(url: str) -> None:
        barrier.wait()  # all 32 at once: the worker batches them together
        codes.append(httpx.get(f"{url}/predict/{user}", timeout=30).status_code)

    with RunningApi(_service(stack.database_url, stack)) as api:
        api.wait_ready()
        threads = [threading.Thread(target=ask, args=(api.url,)) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with api.client() as http:  # a POST naming a user twice answers (and logs) it once
            body = http.post("/predict", json={"user_ids": [user, user]}).json()
        assert len(body["predictions"]) == 1
    assert codes == [200] * 32
    assert _logged(stack, [user]) - before == 33


def test_database_outage_during_a_request_stream_loses_no_log_row(stack, tmp_path):
    outage = Outage(_port(stack.database_url))
    users = stack.online_users[100:160]
    before = _logged(stack, users)
    answered = 0
    stop = threading.Event()

    def stream(url: str) -> None:
        nonlocal answered
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                for user in users:
                    if http.get(f"/predict/{user}").status_code == 200:
                        answered += 1

    service = _service(outage.url(stack.database_url), stack, tmp_path / "spool")
    with RunningApi(service) as api:
        api.wait_ready()
        streamer = threading.Thread(target=stream, args=(api.url,))
        streamer.start()
        time.sleep(1.5)
        outage.cut()  # rows answered just before are still buffered: the flush now fails
        time.sleep(3)
        outage.restore()
        wait_for(lambda: httpx.get(f"{api.url}/ready").status_code == 200, 30, "recovery")
        time.sleep(1.5)
        stop.set()
        streamer.join()
        assert service.predictions_log.buffered < 5_000
    outage.cut()
    assert answered > 0
    assert _logged(stack, users) - before == answered
    assert "streamflow_prediction_log_dropped_total 0.0" in _metrics_text(service)


def test_stop_during_an_outage_spools_the_rows_and_the_next_start_writes_them(stack, tmp_path):
    spool = tmp_path / "spool"
    outage = Outage(_port(stack.database_url))
    users = stack.online_users[200:230]
    before = _logged(stack, users)
    first = _service(outage.url(stack.database_url), stack, spool)
    with RunningApi(first) as api, api.client() as http:
        api.wait_ready()
        # The first batch read also warms the connection: answered while the store is up.
        answers = [http.get(f"/predict/{user}") for user in users]
        assert {response.status_code for response in answers} == {200}
        outage.cut()  # before the next flush (every second) can write them all
    # SIGTERM-like stop while the database is away: the rows went to the spool file.
    spooled = list(spool.glob("*.jsonl"))
    written_before_cut = _logged(stack, users) - before
    assert spooled or written_before_cut == len(users)
    outage.restore()
    second = _service(outage.url(stack.database_url), stack, spool)
    with RunningApi(second) as api:
        api.wait_ready()
        wait_for(lambda: _logged(stack, users) - before == len(users), 30, "the spooled rows")
    assert not list(spool.iterdir())  # written, so the files are gone
    assert _logged(stack, users) - before == len(users)
    outage.cut()


def test_rows_over_the_bound_are_dropped_counted_and_logged(stack, caplog):
    users = stack.online_users[300:340]
    before = _logged(stack, users)
    service = _service(stack.database_url, stack)
    # A tiny bound, to exceed it within the test (the default holds minutes of full load).
    service.predictions_log = PredictionLog(
        stack.database_url, service.metrics.log_dropped.inc, max_rows=10
    )
    with RunningApi(service) as api, api.client() as http:
        api.wait_ready()
        warm_up = stack.online_users[299]  # creates serving.prediction_log if no test did
        logged_warm_up = _logged(stack, [warm_up])
        assert http.get(f"/predict/{warm_up}").status_code == 200
        wait_for(lambda: _logged(stack, [warm_up]) > logged_warm_up, 30, "the first row")
        with psycopg.connect(stack.database_url) as blocker:
            # The log's table locked: its writer waits, answered rows pile up over the bound.
            blocker.execute("lock table serving.prediction_log in access exclusive mode")
            codes = [http.get(f"/predict/{user}").status_code for user in users]
            time.sleep(1.5)  # a flusher cycle: blocked on the lock
        wait_for(lambda: service.predictions_log.buffered == 0, 30, "the log to drain")
        time.sleep(1.5)  # the flusher reports what it dropped
        text = http.get("/metrics").text
    answered = codes.count(200)
    logged = _logged(stack, users) - before
    dropped = answered - logged
    assert answered == len(users) and dropped > 0
    assert f"streamflow_prediction_log_dropped_total {float(dropped)}" in text
    reported = [re.search(r"(\d+) oldest rows dropped", m) for m in caplog.messages]
    assert sum(int(found.group(1)) for found in reported if found) == dropped


def _metrics_text(service: Service) -> str:
    from prometheus_client import generate_latest

    return generate_latest(service.metrics.registry).decode()
