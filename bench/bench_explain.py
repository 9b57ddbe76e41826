"""Cost of `explain=true` on /predict: same API, same state, same run, with and without it.

    .venv/bin/python bench/bench_explain.py [--users 100000] [--home bench-work/serving-home]
                                            [--duration 20] [--rounds 3] [--pairs 20000]
                                            [--ref REF]

Loopback only, bounded in time. Steps:
  1. the state bench_serving.py builds (`streamflow demo-data` + `streamflow run`), reused when
     the home already has a Production model;
  2. `streamflow serve` on a free port; with --ref, also `streamflow serve` of git revision REF
     (its package extracted under the home, first on PYTHONPATH) on another free port, so
     "/predict without explain" is measured before and after this code in the same run;
  3. wrk at concurrency 1 on /predict/{random user}: rounds of (plain, explain=true, REF
     plain), --duration s each after a warm-up, interleaved so that other work on the shared
     machine falls on every variant alike; the table gives each variant's median over rounds;
  3b. one Python client on one keep-alive connection: --pairs pairs of (plain, explain=true)
     requests for the same random user, in random order, so both variants' p99 see the same
     moments of a shared machine;
  4. in process, for every registered version (both tree kinds when the registry has both):
     one row's score, and one row's score + explanation, 2,000 times each (p50 / p99).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import httpx
import psycopg
from bench_serving import BIN, ROOT, ensure_wrk, prepare_state, wait_until_serving, write_ids, wrk

from streamflow_dagster.serving.compiled import _unwrap

WARM_UP_S = 3
KINDS = {
    "hist_gradient_boosting": "HistGradientBoostingClassifier",
    "random_forest": "RandomForestClassifier",
}
ROWS = 2000  # single-row calls timed per version and variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--home", default="bench-work/serving-home")
    parser.add_argument(
        "--pairs", type=int, default=20_000, help="interleaved plain/explain request pairs"
    )
    parser.add_argument("--ref", help="git revision whose API is measured without explain too")
    args = parser.parse_args()
    ensure_wrk()
    home = Path(args.home).resolve()
    env = {**os.environ, "STREAMFLOW_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "0"}
    env.pop("STREAMFLOW_DATABASE_URL", None)
    prepare_state(home, args.users, env)
    ids_file = home / "bench-ids.txt"
    count = write_ids(env, ids_file)
    env["IDS_FILE"] = str(ids_file)
    results = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "users_online": count,
    }
    print(f"{count:,} users online; {os.cpu_count()} cores; load {results['load_before']}")
    servers = {"current": start_api(streamflow_command(), env)}
    if args.ref:
        servers["ref"] = start_api(ref_command(args.ref, home), env)
    try:
        for server in servers.values():
            wait_until_serving(server.url, server.process, env)
            wrk(server.url, 1, WARM_UP_S, env)
            wrk(server.url, 1, WARM_UP_S, env, query="?explain=true")
        runs = measure(servers, args, env)
        results["paired"] = paired(servers["current"].url, ids_file, args.pairs)
        results["production"] = production(servers["current"].url, ids_file)
    finally:
        for server in servers.values():
            server.stop()
    results["http"] = {name: summary(found) for name, found in runs.items()}
    results["in_process"] = in_process(env, ids_file)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report(results, args)
    out = home / "bench-explain.json"
    out.write_text(json.dumps({**results, "runs": runs}, indent=2))
    print(f"\nraw figures: {out}")


class Api:
    def __init__(self, command: list[str], env: dict, port: int, log: Path):
        self.url, self._log = f"http://127.0.0.1:{port}", open(log, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def start_api(command: tuple[list[str], dict], env: dict) -> Api:
    argv, extra_env = command
    port = free_port()
    log = Path(env["STREAMFLOW_HOME"]) / f"bench-explain-{port}.log"
    return Api(argv, {**env, **extra_env}, port, log)


def streamflow_command() -> tuple[list[str], dict]:
    return [str(BIN / "streamflow")], {}


def ref_command(ref: str, home: Path) -> tuple[list[str], dict]:
    """`streamflow` of git revision `ref`: its package and feature repo, first on PYTHONPATH."""
    source = home / f"ref-{ref}"
    if not source.exists():
        archive = subprocess.run(
            ["git", "archive", ref, "streamflow_dagster", "feature_repo"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(source, filter="data")
    run = (
        "import sys; from streamflow_dagster.cli.main import main; "
        "sys.argv[0] = 'streamflow'; main()"
    )
    return [sys.executable, "-c", run], {"PYTHONPATH": str(source)}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(servers: dict[str, Api], args, env: dict) -> dict[str, list[dict]]:
    variants = [("plain", "current", ""), ("explain", "current", "?explain=true")]
    if "ref" in servers:
        variants.append(("ref_plain", "ref", ""))
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for round_number in range(args.rounds):
        for name, server, query in variants:
            run = wrk(servers[server].url, 1, args.duration, env, query=query)
            run["load"] = round(os.getloadavg()[0], 2)
            runs[name].append(run)
            print(
                f"  round {round_number + 1} {name:>9}: {run['requests_per_s']:,.0f} req/s, "
                f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, errors {run['errors']}, "
                f"load {run['load']}",
                flush=True,
            )
    return runs


def paired(url: str, ids_file: Path, pairs: int) -> dict:
    """Plain and explain=true requests interleaved one by one on one keep-alive connection.

    wrk's rounds give each variant its own 20 s, so a burst of other work on the shared
    machine can land on one variant only; here every plain request has an explain=true
    request for the same user next to it (in random order), so both tails see the same
    machine. Concurrency 1; the client's own cost is the same for both.
    """
    import http.client
    import random
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    ids = ids_file.read_text().split()
    rng = random.Random(7)
    seconds: dict[str, list[float]] = {"plain": [], "explain": []}
    for number in range(pairs + 200):
        user = rng.choice(ids)
        order = [("plain", ""), ("explain", "?explain=true")]
        rng.shuffle(order)
        for name, query in order:
            started = time.perf_counter()
            conn.request("GET", f"/predict/{user}{query}")
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"/predict/{user}{query} answered {response.status}")
            if number >= 200:  # the first 200 pairs warm up
                seconds[name].append(elapsed)
    conn.close()
    out = {}
    for name, values in seconds.items():
        values.sort()
        out[name] = {
            "p50_ms": round(values[len(values) // 2] * 1e3, 3),
            "p99_ms": round(values[int(len(values) * 0.99)] * 1e3, 3),
        }
    out["pairs"] = pairs
    out["load"] = round(os.getloadavg()[0], 2)
    print(
        f"  paired x {pairs:,}: plain p50 {out['plain']['p50_ms']} / p99 "
        f"{out['plain']['p99_ms']} ms, explain p50 {out['explain']['p50_ms']} / p99 "
        f"{out['explain']['p99_ms']} ms, load {out['load']}",
        flush=True,
    )
    return out


def summary(runs: list[dict]) -> dict:
    return {
        key: round(statistics.median(run[key] for run in runs), 2)
        for key in ("requests_per_s", "p50_ms", "p99_ms")
    } | {"errors": sum(run["errors"] for run in runs)}


def production(url: str, ids_file: Path) -> dict:
    user = ids_file.read_text().split("\n", 1)[0]
    answer = httpx.get(f"{url}/predict/{user}", params={"explain": "true"}, timeout=10).json()
    return {
        "version": answer["model_version"],
        "output": answer["explanation"].get("output"),
        "example": answer,
    }


def in_process(env: dict, ids_file: Path) -> dict:
    """Per registered version: one row's score, and score + explanation, timed in process."""
    os.environ.update(
        {k: env[k] for k in ("STREAMFLOW_HOME", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")}
    )
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    from streamflow_dagster.ml.dataset import SEED, model_input
    from streamflow_dagster.ml.registry import all_versions, get_version, load_holdout
    from streamflow_dagster.ml.training import candidates
    from streamflow_dagster.platform.db import start_warehouse
    from streamflow_dagster.platform.mlflow_store import resolve_store
    from streamflow_dagster.platform.settings import load_settings
    from streamflow_dagster.serving.predict import make_scorer
    from streamflow_dagster.serving.service import MlflowAliases, feature_reader

    settings = load_settings()
    database_url = start_warehouse(settings)
    reader = feature_reader(database_url)
    ids = ids_file.read_text().split()[:ROWS]
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = reader.read(conn, ids)
    rows = [found[u].values for u in ids if found[u].complete]
    aliases = MlflowAliases(resolve_store(settings).tracking_uri)
    out = {}
    versions = sorted(int(v.version) for v in all_versions(aliases.client()))
    for version in versions:
        out[f"v{version}"] = timed_scorer(aliases.load(version), rows)
    # A tree kind no registered version has: fitted here on the last version's holdout rows
    # with the training code's own candidate, so both kinds' cost is stated.
    kinds = {figures.get("kind") for figures in out.values()}
    version = get_version(aliases.client(), versions[-1])
    holdout = load_holdout(aliases.client(), version)
    features = list(rows[0])
    for kind, pipeline in candidates(SEED, features).items():
        if KINDS[kind] in kinds:
            continue
        pipeline.fit(model_input(holdout, features), holdout["churn_label"])
        model = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=0.5)
        model.fit(model_input(holdout, features), holdout["churn_label"])
        out[f"{kind} (fitted on v{versions[-1]}'s holdout)"] = timed_scorer(
            make_scorer(model, features, rows), rows
        )
    return out


def timed_scorer(scorer, rows: list[dict]) -> dict:
    from streamflow_dagster.serving.explain import explanation

    if scorer.explainer is None:
        return {"explained": False}

    def score(row) -> None:
        scorer.score([row])

    def explain(row) -> None:
        scorer.score([row])
        explanation(scorer.explain([row]), 0, row)

    return {
        "kind": type(_unwrap(scorer.model)[-1]).__name__,
        "trees": len(scorer.compiled.roots),
        "levels": scorer.compiled.levels,
        "score_us": timed(score, rows),
        "score_and_explain_us": timed(explain, rows),
    }


def timed(call, rows: list) -> dict:
    for row in rows[:100]:  # warm-up
        call(row)
    seconds = []
    for row in rows:
        started = time.perf_counter()
        call(row)
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {
        "p50": round(seconds[len(seconds) // 2] * 1e6),
        "p99": round(seconds[int(len(seconds) * 0.99)] * 1e6),
    }


def report(results: dict, args) -> None:
    http = results["http"]
    print(
        f"\n| /predict/{{user_id}}, concurrency 1, median of {args.rounds} x {args.duration} s "
        "| req/s | p50 ms | p99 ms | errors |"
    )
    print("|---|---:|---:|---:|---:|")
    labels = {"plain": "without explain", "explain": "explain=true", "ref_plain": f"{args.ref}"}
    for name, figures in http.items():
        print(
            f"| {labels[name]} | {figures['requests_per_s']:,.0f} | {figures['p50_ms']} "
            f"| {figures['p99_ms']} | {figures['errors']} |"
        )
    added = http["explain"]["p99_ms"] - http["plain"]["p99_ms"]
    print(f"explain=true adds {added:+.2f} ms p99 over wrk's rounds (target: < 2 ms)")
    pair = results["paired"]
    print(
        f"\n| /predict/{{user_id}}, {pair['pairs']:,} interleaved pairs, one keep-alive "
        "connection | p50 ms | p99 ms |"
    )
    print("|---|---:|---:|")
    for name in ("plain", "explain"):
        print(f"| {labels[name]} | {pair[name]['p50_ms']} | {pair[name]['p99_ms']} |")
    added = pair["explain"]["p99_ms"] - pair["plain"]["p99_ms"]
    print(f"explain=true adds {added:+.3f} ms p99 over interleaved pairs (target: < 2 ms)")
    print(
        "\n| in process, one row | kind | trees | score p50 / p99 us | + explanation p50 / p99 us |"
    )
    print("|---|---|---:|---:|---:|")
    for version, figures in results["in_process"].items():
        if not figures.get("kind"):
            print(f"| {version} | not explained | | | |")
            continue
        print(
            f"| {version} | {figures['kind']} | {figures['trees']} "
            f"| {_p50_p99(figures['score_us'])} | {_p50_p99(figures['score_and_explain_us'])} |"
        )
    print(f"\nproduction: v{results['production']['version']} ({results['production']['output']})")
    print(f"load average before {results['load_before']}, after {results['load_after']}")


def _p50_p99(figures: dict) -> str:
    return f"{figures['p50']} / {figures['p99']}"


if __name__ == "__main__":
    main()
