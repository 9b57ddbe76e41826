"""`streamflow demo` through the local deployment: total time and each run's launch overhead.

    .venv/bin/python bench/bench_deployment.py --users 300 --months 2

A fresh state folder (its own embedded PostgreSQL and deployment), `streamflow demo` as a
user runs it, then from the instance: per run, queued -> started (the launch overhead: the
queue's poll, the run worker's start and its import of the definitions) and started ->
ended, and per step (asset) of each run its time: the profile of a run over a range of
months. The deployment and the database are stopped and the folder removed at the end.
`--cwd DIR` runs another checkout's `streamflow` (e.g. the per-month baseline).
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


RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run_records(dagster_home: Path) -> list[tuple[str, str, float, float, dict[str, float]]]:
    """(job, partition(s), launch s, run s, seconds per step) of every run, oldest first."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        rows = []
        for record in reversed(instance.get_run_records()):
            run, start, end = record.dagster_run, record.start_time, record.end_time
            launch = start - record.create_timestamp.timestamp() if start else float("nan")
            months = run.tags.get("dagster/partition") or "..".join(
                run.tags.get(t, "") for t in RANGE_TAGS
            )
            rows.append(
                (
                    run.job_name,
                    months if months != ".." else "-",
                    launch,
                    end - start if start and end else float("nan"),
                    step_seconds(instance, run.run_id),
                )
            )
        return rows


def step_seconds(instance, run_id: str) -> dict[str, float]:
    import dagster as dg

    started: dict[str, float] = {}
    took: dict[str, float] = {}
    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.event_log_entry.timestamp
        elif event.event_type in ends and event.step_key in started:
            took[event.step_key] = record.event_log_entry.timestamp - started[event.step_key]
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--cwd", type=Path, default=None, help="checkout whose .venv to run")
    args = parser.parse_args()
    streamflow = str(args.cwd / ".venv" / "bin" / "streamflow") if args.cwd else STREAMFLOW
    print(machine())
    home = Path(tempfile.mkdtemp(prefix="bench-deploy-", dir=Path.cwd()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMFLOW_", "DAGSTER_"))}
    env.update(STREAMFLOW_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    if args.cwd:  # that checkout's code first on the path (its .venv may be this one's)
        env["PYTHONPATH"] = str(args.cwd.resolve())
    try:
        started = time.monotonic()
        demo = subprocess.run(
            [streamflow, "demo", "--users", str(args.users), "--months", str(args.months)],
            env=env,
            capture_output=True,
            text=True,
            cwd=args.cwd,
        )
        total = time.monotonic() - started
        print(f"streamflow demo: exit {demo.returncode} in {total:.1f} s")
        if demo.returncode != 0:
            print(demo.stdout[-4000:], demo.stderr[-4000:])
        os.environ.update(env)
        launches = []
        for job, partition, launch, run, steps in run_records(home / "dagster"):
            print(f"  {job:20} {partition:24} launch {launch:5.1f} s   run {run:6.1f} s")
            for step, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
                print(f"      {step:40} {seconds:6.1f} s")
            launches.append(launch)
        print(f"launch overhead: mean {sum(launches) / len(launches):.1f} s over {len(launches)}")
    finally:
        subprocess.run([streamflow, "deploy", "stop"], env=env, capture_output=True)
        subprocess.run([streamflow, "db", "stop"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
