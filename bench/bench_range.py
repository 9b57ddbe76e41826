"""`make demo`'s months (12 x 7,000 users) as ONE range run: time and CPU per step.

    .venv/bin/python bench/bench_range.py [--users 7000] [--months 12]

The landing files: `streamflow demo-data` (written once under `<--work>`, reused). The
graph: the setup job, then the monthly job over the whole range as one run with the
range's partition tags (what `streamflow run` / `streamflow demo` submit), executed in this
process (tests/integration/inprocess.py's way: the deployment's job definitions, without the
run worker's launch, which BENCHMARKS.md measures apart). Fresh state folder each run (its
own embedded PostgreSQL on a free port, MLflow, Dagster). CPU seconds per step: this
process and its children (dbt), and the PostgreSQL server's processes, from /proc at each
step's start and end. Run it under `py-spy record --subprocesses -f raw` for a CPU profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration.inprocess
from bench_million import Sampler, step_times  # noqa: E402
from common import hold_work_folder, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def generate(landing: Path, users: int, months: int) -> None:
    if len(list(landing.glob("*/_MANIFEST.json"))) >= months:
        print(f"landing: reusing {landing}")
        return
    started = time.perf_counter()
    command = ["demo-data", "--users", str(users), "--months", str(months), "--out", str(landing)]
    subprocess.run([str(ROOT / ".venv/bin/streamflow"), *command], check=True)
    print(f"landing: written in {time.perf_counter() - started:.1f} s")


def run_graph(home: Path, landing: Path, log_file: Path) -> None:
    os.environ["STREAMFLOW_HOME"] = str(home)
    os.environ["STREAMFLOW_LANDING_DIR"] = str(landing)
    os.environ.pop("STREAMFLOW_DATABASE_URL", None)
    import dagster as dg

    from streamflow_dagster.cli.runner import partition_tags
    from streamflow_dagster.definitions import build_definitions
    from streamflow_dagster.defs.jobs import MONTHLY_JOB, SETUP_JOB
    from streamflow_dagster.landing.months import landed_months
    from streamflow_dagster.platform.db import embedded_server, start_warehouse
    from streamflow_dagster.platform.settings import load_settings
    from tests.integration.inprocess import _output_to, run_setup

    url = start_warehouse()
    postmaster = embedded_server(load_settings()).status().pid
    print(f"warehouse: {url.rsplit('@', 1)[-1]}")
    defs = build_definitions()
    months = landed_months(landing)
    sampler = Sampler(postmaster)
    sampler.start()
    try:
        with dg.instance_for_test() as instance:
            started = time.time()
            assert run_setup(defs, SETUP_JOB, instance, log_file).success
            range_started = time.time()
            cpu0 = time.process_time()
            with _output_to(log_file):
                result = defs.resolve_job_def(MONTHLY_JOB).execute_in_process(
                    instance=instance, tags=partition_tags(months), raise_on_error=False
                )
            ended = time.time()
            cpu1 = time.process_time()
            steps = step_times(instance, result.run_id)
    finally:
        sampler.stop()
    print(f"\nsetup job: {range_started - started:.1f} s")
    print(f"{'step':<24} {'seconds':>8} {'cpu py':>7} {'cpu pg':>7} {'peak MB':>8}")
    for key, start, end, outcome in steps:
        total, _, _ = sampler.peak(start, end)
        cpu_python, cpu_server = sampler.cpu(start, end)
        flag = "" if outcome == "STEP_SUCCESS" else f"  {outcome}"
        print(
            f"{key:<24} {end - start:8.1f} {cpu_python:7.1f} {cpu_server:7.1f} {total:8,.0f}{flag}"
        )
    cpu_python, cpu_server = sampler.cpu(range_started, ended)
    print(
        f"\nrange {months[0]}..{months[-1]} ({len(months)} months): "
        f"{'ok' if result.success else 'FAILED'} in {ended - range_started:.1f} s; CPU "
        f"{cpu_python:.1f} s python tree ({cpu1 - cpu0:.1f} s this process) + "
        f"{cpu_server:.1f} s PostgreSQL; load average {os.getloadavg()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=7000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-work" / "range")
    args = parser.parse_args()
    work = hold_work_folder(args.work, "bench_range.py")
    home, landing = work / "state", work / f"landing-{args.users}x{args.months}"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    generate(landing, args.users, args.months)
    try:
        run_graph(home, landing, home / "run.log")
    finally:
        from streamflow_dagster.platform.db import embedded_server
        from streamflow_dagster.platform.settings import load_settings

        embedded_server(load_settings()).stop()


if __name__ == "__main__":
    main()
