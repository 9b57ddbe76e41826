"""HEAD mirrors GET without the body; a 405's Allow lists HEAD wherever GET is allowed."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamflow_dagster.serving.http_methods import HeadAsGet, allow_header


def test_allow_header_adds_head_to_get():
    assert allow_header("GET") == "GET, HEAD"
    assert allow_header("POST") == "POST"
    assert allow_header("GET, HEAD") == "GET, HEAD"


def test_head_runs_the_get_route_and_sends_no_body():
    app = FastAPI()
    app.add_middleware(HeadAsGet)

    @app.get("/thing")
    async def thing() -> dict:
        return {"answer": 42}

    @app.post("/only-post")
    async def only_post() -> dict:
        return {}

    with TestClient(app) as client:
        head, get = client.head("/thing"), client.get("/thing")
        refused = client.head("/only-post")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert refused.status_code == 405  # HEAD is GET's mirror: not allowed where GET is not
