"""The online API against the real stack: Feast's online store, the MLflow registry, PostgreSQL."""

from __future__ import annotations

import re
import threading
from collections import Counter

import pandas as pd
import psycopg
import pytest

from streamflow_dagster.features.store import FEATURE_SERVICE, feature_names, feature_store
from streamflow_dagster.landing.contract import NET_SERVICES
from streamflow_dagster.ml.dataset import model_input
from streamflow_dagster.ml.registry import (
    PRODUCTION_ALIAS,
    REGISTERED_MODEL,
    load_version,
    set_alias,
)
from streamflow_dagster.serving.split import Split
from tests.integration.serving.api_support import (
    PROFILE_ONLY_USER,
    TOKEN,
    Outage,
    RunningApi,
    Stack,
    build_stack,
    make_service,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(pg_server, tmp_path_factory) -> Stack:
    return build_stack(pg_server.url("postgres"), tmp_path_factory.mktemp("api"))


@pytest.fixture
def api(stack):
    with RunningApi(make_service(stack.database_url, stack.tracking_uri)) as running:
        running.wait_ready()
        yield running
    set_alias(stack.client, PRODUCTION_ALIAS, 1)  # tests that move it put it back


def test_predict_is_what_the_model_computes_from_the_online_features(stack, api):
    users = stack.online_users[:25]
    store = feature_store(stack.database_url)
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{"user_id": u} for u in users],
    ).to_df()
    names = feature_names(store)
    model = load_version(stack.client, 1)
    frame = model_input(online, names)
    expected_probability = model.predict_proba(frame)[:, 1]
    expected_label = model.predict(frame)

    with api.client() as http:
        bodies = [http.get(f"/predict/{user}") for user in users]
        batch = http.post("/predict", json={"user_ids": users}).json()

    assert [r.status_code for r in bodies] == [200] * len(users)
    for position, response in enumerate(bodies):
        body = response.json()
        assert body["user_id"] == users[position]
        assert body["model_version"] == 1
        assert body["churn_probability"] == round(float(expected_probability[position]), 4)
        assert body["prediction"] == int(expected_label[position])
        assert body["features_used"] == online.iloc[position][names].to_dict()
        assert body["as_of"] == stack.months[-1]
        assert "variant" not in body  # no split active
    assert [p["churn_probability"] for p in batch["predictions"]] == [
        round(float(p), 4) for p in expected_probability
    ]
    assert batch["missing"] == []


def test_features_and_missing_features(stack, api):
    store = feature_store(stack.database_url)
    names = feature_names(store)
    user = stack.online_users[3]
    expected = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE), entity_rows=[{"user_id": user}]
    ).to_dict()
    with api.client() as http:
        found = http.get(f"/features/{user}")
        unknown = http.get("/predict/nobody-42")
        gone = http.get(f"/features/{stack.gone_users[0]}")
        partial = http.get(f"/predict/{PROFILE_ONLY_USER}")
        mixed = http.post("/predict", json={"user_ids": [user, "nobody-42"]})

    assert found.status_code == 200
    assert found.json()["features"] == {name: expected[name][0] for name in names}
    # A user the online snapshot does not hold: the 404 names the snapshot, not 14 features.
    snapshot = found.json()["as_of"]
    assert snapshot is not None
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": f"user_id=nobody-42 is not in the online snapshot of AS_OF {snapshot}",
        "as_of": snapshot,
    }
    # Absent from the newest month: not served with an older month's values.
    assert gone.status_code == 404 and gone.json()["as_of"] == snapshot
    assert "missing_features" not in gone.json()
    assert partial.status_code == 404
    profile = ["net_service", "paperless_billing", "plan_stream_movies", "plan_stream_tv"]
    assert partial.json()["missing_features"] == [
        n for n in names if n not in (*profile, "months_active", "monthly_fee")
    ]
    assert mixed.status_code == 200
    assert [p["user_id"] for p in mixed.json()["predictions"]] == [user]
    assert mixed.json()["missing"][0] == {"user_id": "nobody-42", **unknown.json()}


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/predict/", None),
        ("GET", "/features/", None),
        ("GET", "/predict/" + "u" * 129, None),
        ("GET", "/predict/bad%01id", None),
        ("GET", "/features/tab%09id", None),
        ("POST", "/predict", {"user_ids": []}),
        ("POST", "/predict", {"user_ids": [f"u{i}" for i in range(257)]}),
        ("POST", "/predict", {"user_ids": [""]}),
        ("POST", "/predict", {"users": ["u1"]}),
    ],
)
def test_malformed_requests_are_422_with_a_reason(api, method, path, body):
    with api.client() as http:
        response = http.request(method, path, json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("Invalid")


def test_metrics_count_requests_by_route_and_show_the_model_version(stack, api):
    with api.client() as http:
        http.get(f"/predict/{stack.online_users[0]}")
        http.get("/predict/nobody-42")
        text = http.get("/metrics").text
    assert (
        'streamflow_requests_total{endpoint="/predict/{user_id}",method="GET",status="200"}' in text
    )
    assert (
        'streamflow_requests_total{endpoint="/predict/{user_id}",method="GET",status="404"}' in text
    )
    assert 'streamflow_model_version{alias="production",variant="production"} 1.0' in text
    assert "streamflow_online_store_read_seconds_count" in text
    assert "nobody-42" not in text  # route templates, never user ids


def test_store_outage_is_503_and_the_api_recovers(stack):
    port = int(stack.database_url.rsplit(":", 1)[1].split("/")[0])
    outage = Outage(port)
    service = make_service(outage.url(stack.database_url), stack.tracking_uri)
    user = stack.online_users[0]
    with RunningApi(service) as api, api.client() as http:
        api.wait_ready()
        assert http.get(f"/predict/{user}").status_code == 200
        outage.cut()
        down = http.get(f"/predict/{user}")
        features = http.get(f"/features/{user}")
        ready = http.get("/ready")
        assert down.status_code == 503 and features.status_code == 503
        assert down.json()["error"].startswith("online store unreachable")
        assert "Traceback" not in down.text
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        outage.restore()
        wait_for(lambda: http.get(f"/predict/{user}").status_code == 200, 30, "recovery")
        assert http.get("/ready").status_code == 200


def test_registry_away_at_start_is_503_until_it_comes_back(stack):
    port = int(stack.tracking_uri.rsplit(":", 1)[1].split("/")[0])
    outage = Outage(port)
    outage.cut()
    service = make_service(stack.database_url, outage.url(stack.tracking_uri))
    user = stack.online_users[0]
    # MLflow retries an unreachable database for minutes: open the port after 2 s instead.
    with RunningApi(service, startup_wait_s=2) as api, api.client() as http:
        response = wait_for(
            lambda: (r := http.get(f"/predict/{user}")).status_code == 503 and r, 30, "a 503"
        )
        assert "no production model loaded" in response.json()["error"]
        assert http.get("/ready").json()["status"] == "not_ready"
        outage.restore()
        wait_for(lambda: http.get(f"/predict/{user}").status_code == 200, 60, "recovery")


def test_alias_moves_reach_the_api_without_failing_a_request(stack, api):
    users = stack.online_users[:50]
    seen: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def hammer() -> None:
        with api.client() as http:
            while not stop.is_set():
                for user in users:
                    response = http.get(f"/predict/{user}")
                    version = response.json().get("model_version")
                    seen.append((response.status_code, version))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        set_alias(stack.client, PRODUCTION_ALIAS, 2)  # a promotion
        wait_for(lambda: seen and seen[-1][1] == 2, 30, "v2 to be served")
        # A version that cannot be loaded: v2 keeps serving and /ready says why.
        broken = stack.client.create_model_version(
            REGISTERED_MODEL, source=str(stack.client.tracking_uri) + "-missing", run_id=None
        )
        set_alias(stack.client, PRODUCTION_ALIAS, broken.version)
        ready = wait_for(
            lambda: (body := api._ready_body()) and body["models"]["production"]["error"] and body,
            30,
            "the failed load to be reported",
        )
        assert ready["status"] == "degraded"
        assert ready["models"]["production"]["version"] == 2
        assert f"cannot load v{broken.version}" in ready["models"]["production"]["error"]
        assert seen[-1][1] == 2
        set_alias(stack.client, PRODUCTION_ALIAS, 1)  # a rollback
        wait_for(lambda: seen[-1][1] == 1, 30, "v1 to be served again")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    statuses = Counter(status for status, _ in seen)
    assert statuses == {200: len(seen)} and len(seen) >= 100
    served = [version for _, version in seen]
    switches = [v for i, v in enumerate(served) if i == 0 or v != served[i - 1]]
    assert switches[0] == 1 and 2 in switches and switches[-1] == 1


def test_ab_split_is_stable_logged_and_needs_the_token(stack):
    set_alias(stack.client, "challenger", 2)
    service = make_service(stack.database_url, stack.tracking_uri)
    users = stack.online_users[:200]
    with RunningApi(service) as api, api.client() as http:
        api.wait_ready()
        split = {"challenger_alias": "challenger", "challenger_share": 0.5}
        assert http.put("/admin/split", json=split).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert http.put("/admin/split", json=split, headers=wrong).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert http.put("/admin/split", json=split, headers=good).status_code == 200
        wait_for(
            lambda: http.get("/ready").json()["models"].get("challenger", {}).get("version"),
            30,
            "the challenger to load",
        )
        first = [http.get(f"/predict/{u}").json() for u in users]
        second = http.post("/predict", json={"user_ids": users}).json()["predictions"]
        assert [p["variant"] for p in first] == [p["variant"] for p in second]
        assert [p["variant"] for p in first] == [Split("challenger", 0.5).variant(u) for u in users]
        versions = {p["variant"]: p["model_version"] for p in first}
        assert versions == {"production": 1, "challenger": 2}
    # Stopping the API flushed the prediction log.
    with psycopg.connect(stack.database_url) as conn:
        logged = pd.DataFrame(
            conn.execute(
                "select user_id, variant, model_version, churn_probability "
                "from serving.prediction_log where user_id = any(%s) and variant = 'challenger'",
                (users,),
            ).fetchall(),
            columns=["user_id", "variant", "model_version", "churn_probability"],
        )
    challenger_answers = {p["user_id"]: p for p in first if p["variant"] == "challenger"}
    assert set(logged["user_id"]) == set(challenger_answers)
    for row in logged.itertuples():
        assert row.model_version == 2
        # The log keeps the full probability; the answer shows it to 4 decimals.
        assert (
            round(row.churn_probability, 4) == challenger_answers[row.user_id]["churn_probability"]
        )


def test_admin_calls_are_refused_without_a_configured_token(stack):
    service = make_service(stack.database_url, stack.tracking_uri, token=None)
    with RunningApi(service) as api, api.client() as http:
        response = http.post("/admin/reload", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert "STREAMFLOW_API_TOKEN" in response.json()["error"]


def test_the_port_opens_with_the_model_and_store_loaded(stack):
    user = stack.online_users[1]
    service = make_service(stack.database_url, stack.tracking_uri)
    # No wait_ready: the first requests right after the port opens.
    with RunningApi(service) as api, api.client() as http:
        ready = http.get("/ready")
        predicted = http.get(f"/predict/{user}")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert predicted.status_code == 200
    # The real data's spelling, as stored and as the model was trained on.
    assert predicted.json()["features_used"]["net_service"] in NET_SERVICES


def test_ready_names_a_registry_without_production(stack):
    stack.client.delete_registered_model_alias(REGISTERED_MODEL, PRODUCTION_ALIAS)
    try:
        service = make_service(stack.database_url, stack.tracking_uri)
        with RunningApi(service) as api, api.client() as http:
            ready = http.get("/ready")
            predicted = http.get(f"/predict/{stack.online_users[0]}")
    finally:
        set_alias(stack.client, PRODUCTION_ALIAS, 1)
    assert ready.status_code == 503
    [reason] = ready.json()["reasons"]
    assert "no version of the registered model holds alias 'production'" in reason
    assert "still loading" not in reason
    assert predicted.status_code == 503 and "holds alias 'production'" in predicted.text


def test_head_on_get_routes_and_405_with_allow(stack, api):
    user = stack.online_users[2]
    with api.client() as http:
        head_health = http.head("/health")
        head_features = http.head(f"/features/{user}")
        get_features = http.get(f"/features/{user}")
        post_health = http.post("/health")
        get_batch = http.get("/predict")
        delete_one = http.delete(f"/predict/{user}")
    assert head_health.status_code == 200 and head_health.content == b""
    assert head_features.status_code == 200 and head_features.content == b""
    assert head_features.headers["content-length"] == str(len(get_features.content))
    assert post_health.status_code == 405 and post_health.headers["allow"] == "GET, HEAD"
    assert get_batch.status_code == 405 and get_batch.headers["allow"] == "POST"
    assert delete_one.status_code == 405 and delete_one.headers["allow"] == "GET, HEAD"
    assert "error" in post_health.json()


def test_docs_load_from_local_files_only(api):
    with api.client() as http:
        page = http.get("/docs")
        assert page.status_code == 200
        links = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert links and all(link.startswith("/") for link in links), links
        assert "//" not in page.text.replace("://127.0.0.1", "")  # no scheme-relative URL
        for link in links:
            asset = http.get(link)
            assert asset.status_code == 200 and asset.content, link
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/redoc").status_code == 404  # redoc would need a CDN
