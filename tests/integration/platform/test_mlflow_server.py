"""MLflow as a tracking server on the real stack: `streamflow mlflow-server` over the home's
database `mlflow`, artifacts proxied to an S3-compatible store (moto's server, a real
process); a month runs through the CLI and the deployment, and `streamflow serve` answers,
all with MLFLOW_TRACKING_URI naming the server and no artifact folder of their own.

The clients get neither the bucket's address nor its credentials: everything they store or
load goes through the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from streamflow_dagster.landing.demo_data import generate_landing
from streamflow_dagster.ml.registry_names import PRODUCTION_ALIAS, REGISTERED_MODEL
from streamflow_dagster.platform.mlflow_store import (
    EXPERIMENT_NAME,
    MlflowStore,
    MlflowStoreMisconfigured,
    ensure_experiment,
)
from tests.s3_server import S3Server
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))
MONTH = "2024-01-31"
SEED, USERS = 5, 2000
BUCKET, PREFIX = "streamflow-mlflow", "artifacts"
START_TIMEOUT_S = 600  # PostgreSQL, MLflow's tables, then its imports twice (CLI, uvicorn)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """The process and what it started (its own session): mlflow server forks workers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def stack(server_home):
    home = server_home("mlflowsrv")
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STREAMFLOW_DATABASE_URL", "MLFLOW_TRACKING_URI", "DAGSTER_HOME")
        and not k.startswith(("STREAMFLOW_PG_", "STREAMFLOW_SERVE_", "AWS_", "MLFLOW_S3_"))
    }
    base |= {"STREAMFLOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    logs = home / "test-servers"  # removed with the home at the end of the session
    s3 = S3Server(logs).start()
    s3.client().create_bucket(Bucket=BUCKET)
    port = free_port()
    server_log = (logs / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [
            STREAMFLOW,
            "mlflow-server",
            "--artifacts-destination",
            f"s3://{BUCKET}/{PREFIX}",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=base | s3.env(),
        cwd=home,  # MLflow's own default folders (./mlartifacts) would land here
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    tracking = f"http://127.0.0.1:{port}"
    clients = base | {"MLFLOW_TRACKING_URI": tracking}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        started = time.monotonic()
        while not _answers(f"{tracking}/health"):
            assert server.poll() is None, Path(server_log.name).read_text()[-3000:]
            assert time.monotonic() < deadline, "streamflow mlflow-server did not answer"
            time.sleep(1)
        print(f"\nmlflow server answered {time.monotonic() - started:.0f} s after start")
        generate_landing(home / "landing", users=USERS, months=1, seed=SEED)
        yield {"home": home, "env": clients, "s3": s3, "tracking": tracking}
    finally:
        subprocess.run([STREAMFLOW, "deploy", "stop"], env=clients, check=False, timeout=300)
        _stop(server)
        subprocess.run([STREAMFLOW, "db", "stop"], env=clients, check=False, timeout=300)
        s3.stop()
        server_log.close()


def test_a_month_trains_promotes_scores_and_serves_through_the_server(stack):
    home, env, s3, tracking = stack["home"], stack["env"], stack["s3"], stack["tracking"]
    started = time.monotonic()
    done = subprocess.run(
        [STREAMFLOW, "run", "--months", MONTH],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    print(f"month run through the server: {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{MONTH} churn_model: done" in done.stdout

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment.artifact_location.startswith("mlflow-artifacts:/"), experiment
    production = client.get_model_version_by_alias(REGISTERED_MODEL, PRODUCTION_ALIAS)
    download = client.get_model_version_download_uri(REGISTERED_MODEL, production.version)
    assert download.startswith("mlflow-artifacts:/"), download
    run = client.get_run(production.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri

    # The model and the run's files are objects in the bucket, under the server's prefix.
    keys: list[str] = []
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [o["Key"] for o in page.get("Contents", [])]
    model_path = download.removeprefix("mlflow-artifacts:").lstrip("/")
    assert f"{PREFIX}/{model_path}/MLmodel" in keys, keys[:20]
    run_path = run.info.artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
    assert any(k.startswith(f"{PREFIX}/{run_path}/") for k in keys), keys[:20]

    url = subprocess.run(
        [STREAMFLOW, "db", "url"], env=env, capture_output=True, text=True, timeout=120
    )
    assert url.returncode == 0, url.stderr
    with psycopg.connect(url.stdout.strip()) as conn:
        scored, version = conn.execute(
            "select count(*), max(model_version) from scores.churn_scores where as_of = %s",
            (MONTH,),
        ).fetchone()
        user = conn.execute(
            "select user_id from scores.churn_scores where as_of = %s limit 1", (MONTH,)
        ).fetchone()[0]
    assert scored > 0 and int(version) == int(production.version)

    api = free_port()
    serve = subprocess.Popen(
        [STREAMFLOW, "serve", "--port", str(api)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _answers(f"http://127.0.0.1:{api}/ready"):
            assert serve.poll() is None, serve.stderr.read()
            assert time.monotonic() < deadline, "the API did not become ready"
            time.sleep(1)
        predicted = httpx.get(f"http://127.0.0.1:{api}/predict/{user}", timeout=30)
    finally:
        _stop(serve)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["model_version"] == int(production.version)

    # Nothing MLflow stores was written to the clients' (or the server's) disk.
    assert not (home / "mlflow-artifacts").exists()
    assert not (home / "mlartifacts").exists() and not (home / "mlruns").exists()
    assert not list(home.rglob("MLmodel")), "a model was written under STREAMFLOW_HOME"
    print(f"{len(keys)} objects in s3://{BUCKET}; {scored} users scored by v{version}")


def test_an_experiment_with_local_artifacts_is_refused_through_the_server(stack, tmp_path):
    """An experiment made with a local folder (as the embedded store makes them) would let
    each client write its own copy: through a server it is refused, saying what to do."""
    tracking = stack["tracking"]
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    client.create_experiment("local_folder", artifact_location=(tmp_path / "a").as_uri())
    with pytest.raises(MlflowStoreMisconfigured) as raised:
        ensure_experiment(MlflowStore(tracking, None), "local_folder")
    message = str(raised.value)
    assert "local_folder" in message and (tmp_path / "a").as_uri() in message
    assert "streamflow mlflow-server --artifacts-destination" in message


def test_a_missing_bucket_stops_the_server_before_it_starts(stack):
    env = stack["env"] | stack["s3"].env()
    env.pop("MLFLOW_TRACKING_URI")
    done = subprocess.run(
        [
            STREAMFLOW,
            "mlflow-server",
            "--artifacts-destination",
            "s3://no-such-bucket/x",
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "The artifacts bucket 'no-such-bucket'" in done.stderr
    assert stack["s3"].endpoint in done.stderr and "Create the bucket" in done.stderr
