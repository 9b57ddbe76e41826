"""`streamflow demo` through the local deployment: total time and each run's launch overhead.

    .venv/bin/python bench/bench_deployment.py --users 300 --months 2

A fresh state folder (its own embedded PostgreSQL and deployment), `streamflow demo` as a
user runs it, then from the instance: per run, queued -> started (the launch overhead: the
queue's poll, the run worker's start and its import of the definitions) and started ->
ended. The deployment and the database are stopped and the folder removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

STREAMFLOW = str(Path(sys.executable).with_name("streamflow"))


def run_records(dagster_home: Path) -> list[tuple[str, str, float, float]]:
    """(job, partition, launch s, run s) of every run, oldest first."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        rows = []
        for record in reversed(instance.get_run_records()):
            run, start, end = record.dagster_run, record.start_time, record.end_time
            launch = start - record.create_timestamp.timestamp() if start else float("nan")
            rows.append(
                (
                    run.job_name,
                    run.tags.get("dagster/partition", "-"),
                    launch,
                    end - start if start and end else float("nan"),
                )
            )
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--months", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    home = Path(tempfile.mkdtemp(prefix="bench-deploy-", dir=Path.cwd()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMFLOW_", "DAGSTER_"))}
    env.update(STREAMFLOW_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    try:
        started = time.monotonic()
        demo = subprocess.run(
            [STREAMFLOW, "demo", "--users", str(args.users), "--months", str(args.months)],
            env=env,
            capture_output=True,
            text=True,
        )
        total = time.monotonic() - started
        print(f"streamflow demo: exit {demo.returncode} in {total:.1f} s")
        os.environ.update(env)
        launches = []
        for job, partition, launch, run in run_records(home / "dagster"):
            print(f"  {job:20} {partition:12} launch {launch:5.1f} s   run {run:6.1f} s")
            launches.append(launch)
        print(f"launch overhead: mean {sum(launches) / len(launches):.1f} s over {len(launches)}")
    finally:
        subprocess.run([STREAMFLOW, "deploy", "stop"], env=env, capture_output=True)
        subprocess.run([STREAMFLOW, "db", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
