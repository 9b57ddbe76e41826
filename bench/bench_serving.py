"""Load benchmark of the online API (`streamflow serve`) against a plain FastAPI baseline.

    .venv/bin/python bench/bench_serving.py [--users 100000] [--duration 30]
                                            [--home bench-work/serving-home] [--no-baseline]

Loopback only, bounded in time. Steps:
  1. state: `streamflow demo-data --users N --months 2` and `streamflow run` under --home (skipped
     when that home already has a Production model), so the API serves the real platform's
     online store and registry;
  2. the ids of the newest month's users (every request hits a user with features);
  3. `streamflow serve` (one process), then wrk at concurrency 1 and 32 for --duration seconds
     each on /predict/{user_id} with random ids, after a 3 s warm-up; py-spy samples the API
     during the concurrency-32 run (where the time goes); the API's peak RSS (VmHWM);
  4. the same load on bench/serving_baseline_app.py (Feast get_online_features + MLflow pyfunc
     predict, one uvicorn worker) on the same state, in the same run;
  5. a check that the API's answers equal the model's own predict_proba on Feast's features.
Needs wrk (Debian: `apt-get install wrk`; installed here if missing and apt-get can).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "random_user.lua"
CONCURRENCY = (1, 32)
WARM_UP_S = 3
PROFILE_S = 10
# Frames that say which part of the request path a profile sample is in (first match wins).
PROFILE_PARTS = [
    ("online store read (SQL round trip + decoding)", ("online_read.py",)),
    ("model (compiled trees)", ("compiled.py",)),
    ("model (scikit-learn path)", ("sklearn/",)),
    ("prediction log (COPY)", ("predlog.py",)),
    ("metrics", ("prometheus_client/",)),
    ("FastAPI/Starlette routing, validation, JSON", ("fastapi/", "starlette/", "pydantic")),
    ("uvicorn + HTTP parsing (h11/httptools)", ("uvicorn/", "h11/", "httptools")),
    ("asyncio event loop", ("asyncio/",)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run")
    parser.add_argument("--home", default="bench-work/serving-home")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    ensure_wrk()
    home = Path(args.home).resolve()
    env = {**os.environ, "STREAMFLOW_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "0"}
    env.pop("STREAMFLOW_DATABASE_URL", None)
    prepare_state(home, args.users, env)
    ids_file = home / "bench-ids.txt"
    count = write_ids(env, ids_file)
    print(f"{count:,} users online; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    env["IDS_FILE"] = str(ids_file)

    results = {"users_online": count}
    api_cmd = [str(BIN / "streamflow"), "serve", "--port", "8765", "--log-level", "warning"]
    results["streamflow"] = load_test("StreamFlow API", api_cmd, 8765, env, args, profile=True)
    results["identical_to_model"] = answers_match_the_model(env, ids_file)
    if not args.no_baseline:
        baseline_cmd = [
            str(BIN / "uvicorn"),
            "bench.serving_baseline_app:app",
            "--app-dir",
            str(ROOT),
            "--port",
            "8766",
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        results["baseline"] = load_test("plain baseline", baseline_cmd, 8766, env, args)
    report(results)
    out = home / "bench-serving.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nraw figures: {out}")


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk from Debian ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        return
    sys.exit("wrk is needed: apt-get install wrk")


def prepare_state(home: Path, users: int, env: dict) -> None:
    status = subprocess.run(
        [str(BIN / "streamflow"), "model", "status"], env=env, capture_output=True, text=True
    )
    if status.returncode == 0 and re.search(r"^production\s+v\d+", status.stdout, re.M):
        print(f"reusing the state in {home}")
        return
    print(f"building the state: {users:,} users, 2 months, whole graph (a few minutes) ...")
    started = time.perf_counter()
    streamflow = str(BIN / "streamflow")
    subprocess.run(
        [streamflow, "demo-data", "--users", str(users), "--months", "2"], env=env, check=True
    )
    subprocess.run([streamflow, "run"], env=env, check=True)
    print(f"state ready in {time.perf_counter() - started:.0f} s")


def warehouse(env: dict) -> str:
    url = subprocess.run(
        [str(BIN / "streamflow"), "db", "url"], env=env, capture_output=True, text=True, check=True
    )
    return url.stdout.strip().splitlines()[-1]


def write_ids(env: dict, path: Path) -> int:
    with psycopg.connect(warehouse(env)) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                "select user_id from marts.usage_agg_30d_snapshots "
                "where as_of = (select max(as_of) from marts.usage_agg_30d_snapshots)"
            )
        ]
    path.write_text("\n".join(ids) + "\n")
    return len(ids)


def load_test(
    name: str, cmd: list[str], port: int, env: dict, args, profile=False, after=None, start_s=180
) -> dict:
    """wrk on the server `cmd` starts; `after(url)`, when given, runs before it stops (its
    value is kept as `after`)."""
    print(f"\n== {name}: {' '.join(Path(c).name if '/' in c else c for c in cmd)}", flush=True)
    ensure_port_free(port)
    log = open(Path(env["STREAMFLOW_HOME"]) / f"bench-{port}.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    result = {}
    try:
        wait_until_serving(url, server, env, start_s)
        wrk(url, 4, WARM_UP_S, env)
        for connections in CONCURRENCY:
            spy = None
            if profile and connections == 32:
                spy = start_profile(server.pid, Path(env["STREAMFLOW_HOME"]))
            run = wrk(url, connections, args.duration, env)
            if spy is not None:
                run["profile"] = finish_profile(*spy)
            result[f"c{connections}"] = run
            print(
                f"  concurrency {connections:>2}: {run['requests_per_s']:,.0f} req/s, "
                f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, errors {run['errors']}",
                flush=True,
            )
        result["peak_rss_mb"] = peak_rss_mb(server.pid)
        print(f"  peak RSS of the server: {result['peak_rss_mb']} MB")
        if after is not None:
            result["after"] = after(url)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    return result


def ensure_port_free(port: int) -> None:
    """A server left on the port would answer in place of the one under test."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            sys.exit(f"port {port} is already in use: stop what listens there first")


def wait_until_serving(url: str, server: subprocess.Popen, env: dict, timeout: float = 180):
    sample = Path(env["IDS_FILE"]).read_text().split("\n", 1)[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; see its bench-*.log")
        try:
            if httpx.get(f"{url}/predict/{sample}", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.5)
    sys.exit(f"{url} did not answer within {timeout:.0f} s")


def wrk(url: str, connections: int, seconds: int, env: dict, query: str = "") -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(LUA),
            url,
        ],
        env={**env, "SPIKE_PATH": "/predict/", "QUERY": query},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(text: str) -> dict:
    def latency_ms(percentile: str) -> float:
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 2)

    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(g) for g in socket.groups()) if socket else 0
    )
    return {
        "requests": requests,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "errors": errors,
    }


def start_profile(pid: int, home: Path):
    out = home / "bench-profile.txt"
    spy = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(PROFILE_S),
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return spy, out


def finish_profile(spy: subprocess.Popen, out: Path) -> dict:
    spy.wait(timeout=PROFILE_S + 60)
    if not out.exists():
        return {"error": "py-spy wrote no profile (ptrace not permitted?)"}
    return summarize_profile(out.read_text())


def summarize_profile(folded: str) -> dict:
    """Share of the API's busy samples per part of the request path (folded stacks)."""
    parts, busy = Counter(), 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if _idle(frames[-1]):
            continue
        busy += int(count)
        parts[_part(frames)] += int(count)
    return {name: round(100 * n / busy, 1) for name, n in parts.most_common()} if busy else {}


def _idle(leaf: str) -> bool:
    # Blocked in C (a queue get, a select): py-spy shows the calling Python frame as the leaf.
    waits = ("select (", "epoll", "poll (", "wait (", "_wait_for_tstate_lock", "acquire (")
    blocked = ("Engine._run (", "_worker (concurrent/futures")
    return any(w in leaf for w in waits) or leaf.startswith(blocked)


def _part(frames: list[str]) -> str:
    for name, markers in PROFILE_PARTS:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "other"


def peak_rss_mb(pid: int) -> int:
    """The server's peak resident memory (VmHWM), summed over its process tree."""
    total = 0
    for child in [pid, *_children(pid)]:
        status = Path(f"/proc/{child}/status")
        if status.exists():
            match = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
            total += int(match.group(1)) if match else 0
    return round(total / 1024)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in found.split()]
    return kids + [g for k in kids for g in _children(k)]


def answers_match_the_model(env: dict, ids_file: Path, sample: int = 200) -> bool:
    """The API's answers for a sample of users == predict_proba on Feast's online features."""
    code = f"""
import json, sys, httpx
from streamflow_dagster.platform.db import start_warehouse
from streamflow_dagster.features.store import FEATURE_SERVICE, feature_names, feature_store
from streamflow_dagster.platform.mlflow_store import resolve_store
from streamflow_dagster.ml.dataset import model_input
from streamflow_dagster.ml.registry import PRODUCTION_ALIAS, alias_version, load_version
from streamflow_dagster.platform.settings import load_settings
from mlflow.tracking import MlflowClient
ids = open({str(ids_file)!r}).read().split()[:{sample}]
settings = load_settings()
store = feature_store(start_warehouse(settings))
names = feature_names(store)
online = store.get_online_features(features=store.get_feature_service(FEATURE_SERVICE),
    entity_rows=[{{"user_id": u}} for u in ids]).to_df()
uri = resolve_store(settings).tracking_uri
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
version = int(alias_version(client, PRODUCTION_ALIAS).version)
expected = load_version(client, version).predict_proba(model_input(online, names))[:, 1]
served = httpx.post("http://127.0.0.1:8767/predict", json={{"user_ids": ids}}).json()
got = [p["churn_probability"] for p in served["predictions"]]
print(json.dumps(got == [round(float(p), 4) for p in expected]))  # answers show 4 decimals
"""
    ensure_port_free(8767)
    cmd = [str(BIN / "streamflow"), "serve", "--port", "8767", "--log-level", "warning"]
    server = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_serving("http://127.0.0.1:8767", server, env)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        same = json.loads(out.strip().splitlines()[-1])
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
    print(f"\nAPI answers == model.predict_proba on Feast's features ({sample} users): {same}")
    return same


def report(results: dict) -> None:
    api, base = results["streamflow"], results.get("baseline")
    print("\n| /predict/{user_id}, 30 s, loopback | StreamFlow | plain baseline | ratio |")
    print("|---|---:|---:|---:|")
    for c in CONCURRENCY:
        ours, theirs = api[f"c{c}"], base[f"c{c}"] if base else None
        ratio = f"{ours['requests_per_s'] / theirs['requests_per_s']:.1f}x" if theirs else ""
        plain = (
            f"{theirs['requests_per_s']:,.0f} req/s, p50/p99 {theirs['p50_ms']}/"
            f"{theirs['p99_ms']} ms, {theirs['errors']} errors"
            if theirs
            else "not run"
        )
        print(
            f"| concurrency {c} | {ours['requests_per_s']:,.0f} req/s, p50/p99 {ours['p50_ms']}/"
            f"{ours['p99_ms']} ms, {ours['errors']} errors | {plain} | {ratio} |"
        )
    peak = f"{base['peak_rss_mb']} MB" if base else ""
    print(f"| server peak RSS | {api['peak_rss_mb']} MB | {peak} | |")
    profile = api["c32"].get("profile", {})
    if profile:
        print("\nWhere the API's busy time goes at concurrency 32 (py-spy, % of busy samples):")
        for name, share in profile.items():
            print(f"  {share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
