"""The embedded server restarted under a running API: the same address, answers again within
30 s of the database coming back, and never a stack trace in between."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

from streamflow_dagster.platform.embedded_pg import EmbeddedPostgres
from tests.faults.test_db_faults import kill_server
from tests.integration.serving.api_support import RunningApi, build_stack, make_service

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RECOVERY_BOUND_S = 30  # the promise: within 30 s of the database returning


class RequestStream:
    """Requests for one user in a loop, counting answers by status, until stopped."""

    def __init__(self, url: str, user: str):
        self.url, self.user = url, user
        self.statuses: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestStream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                response = http.get(f"/predict/{self.user}")
                self.statuses.append((time.monotonic(), response.status_code, response.text))
                time.sleep(0.05)

    def first_ok_after(self, moment: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, status, _ in list(self.statuses):
                if at > moment and status == 200:
                    return at
            time.sleep(0.1)
        raise AssertionError(f"no 200 within {timeout} s of the database returning")


def test_api_recovers_by_itself_when_the_database_returns(tmp_path, fault_home):
    """A clean stop and start, then a crash (SIGKILL) and start, under a request stream."""
    saved = dict(os.environ)  # Feast's store sets STREAMFLOW_PG_* and PGTZ
    server = EmbeddedPostgres(fault_home / "pg")
    try:
        status = server.start()
        stack = build_stack(status.url("postgres"), tmp_path)
        service = make_service(stack.database_url, stack.tracking_uri)
        with RunningApi(service) as api, RequestStream(api.url, stack.online_users[0]) as stream:
            api.wait_ready()
            for outage in (server.stop, lambda: kill_server(server)):
                time.sleep(0.5)
                outage()
                time.sleep(2)  # requests meet the outage
                back = server.start()
                returned = time.monotonic()
                assert back.port == status.port  # the API's URL is still right
                recovered = stream.first_ok_after(returned, RECOVERY_BOUND_S)
                assert recovered - returned < RECOVERY_BOUND_S
                print(f"recovered {recovered - returned:.1f} s after the database returned")
            api.wait_ready(timeout=RECOVERY_BOUND_S)
        failed = [(s, t) for at, s, t in stream.statuses if s != 200]
        assert failed, "the outage was never seen: the test did not test anything"
        assert {s for s, _ in failed} <= {503}
        assert all("Traceback" not in text for _, text in failed)
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
