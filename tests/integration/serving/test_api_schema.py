"""Property-based run over the API's OpenAPI schema (schemathesis): no input gives a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from tests.integration.serving.api_support import RunningApi, build_stack, make_service

pytestmark = pytest.mark.integration

# Enough generated requests per operation to cover odd ids, bodies and headers, while the
# whole run stays under a minute on two cores.
EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def running_api(pg_server, tmp_path_factory):
    stack = build_stack(pg_server.url("postgres"), tmp_path_factory.mktemp("api-schema"))
    with RunningApi(make_service(stack.database_url, stack.tracking_uri)) as api:
        api.wait_ready()
        yield api


def test_no_request_gets_a_server_error(running_api):
    schema = schemathesis.openapi.from_url(f"{running_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /predict/{user_id}", "POST /predict"}
    calls = []
    for operation in operations:
        # Valid requests and requests that break the schema (bad ids, bodies, types).
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case) -> None:
            response = case.call(timeout=30)
            calls.append(response.status_code)
            where = (case.method, case.formatted_path, case.body, response.text)
            assert response.status_code < 500, where
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                assert "error" in response.json(), where

        no_server_error()
    assert len(calls) >= 100  # the run really generated requests
    assert {200, 404, 422} <= set(calls)  # answers, unknown users and rejected input
