"""`/predict` with `streamflow serve --workers 1` and `--workers 2`, same run, same state.

    .venv/bin/python bench/bench_workers.py [--users 100000] [--duration 20]
                                            [--home bench-work/serving-home]

Reuses bench_serving's state (built there when missing), ids and load test: wrk at concurrency
1 and 32 on /predict/{user_id} with random ids, each server started, warmed up and stopped in
turn. After each run the API's own /metrics must count every request wrk saw answered (the
workers' counters summed), so the figures are of the platform's metrics path too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import httpx
from bench_serving import BIN, ensure_wrk, load_test, prepare_state, write_ids

PORT = 8775
PREDICT_200 = re.compile(
    r'^streamflow_requests_total\{endpoint="/predict/\{user_id\}",method="GET",status="200"\} '
    r"(\S+)$",
    re.M,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--home", default="bench-work/serving-home")
    parser.add_argument(
        "--start-timeout", type=int, default=900, help="seconds for the workers to load"
    )
    args = parser.parse_args()
    ensure_wrk()
    home = Path(args.home).resolve()
    env = {**os.environ, "STREAMFLOW_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "0"}
    env.pop("STREAMFLOW_DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    prepare_state(home, args.users, env)
    ids_file = home / "bench-ids.txt"
    count = write_ids(env, ids_file)
    env["IDS_FILE"] = str(ids_file)
    results = {"users_online": count, "cores": os.cpu_count(), "load_before": os.getloadavg()}
    print(f"{count:,} users online; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    for workers in (1, 2):
        cmd = [str(BIN / "streamflow"), "serve", "--port", str(PORT), "--log-level", "warning"]
        cmd += ["--workers", str(workers)]
        results[f"workers_{workers}"] = load_test(
            f"{workers} worker(s)",
            cmd,
            PORT,
            env,
            args,
            after=counted_by_the_api,
            start_s=args.start_timeout,
        )
        results[f"workers_{workers}"]["load_after"] = os.getloadavg()
    out = home / "bench-workers.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nraw figures: {out}")


def counted_by_the_api(url: str) -> float:
    """/predict answers the API counted (over every worker) since it started."""
    match = PREDICT_200.search(httpx.get(f"{url}/metrics", timeout=10).text)
    return float(match.group(1)) if match else 0.0


if __name__ == "__main__":
    main()
