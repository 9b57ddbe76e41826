"""One month of 1,000,000 users through the whole graph: time per asset and peak memory.

    nice -n 5 .venv/bin/python bench/bench_million.py --users 1000000

Landing data: `streamflow demo-data --months 1` (its own process, timed apart): one month
holds the month's labels, so the month trains a model. The graph: the setup job, then the
monthly job for that month, executed in this process (tests/integration/inprocess.py, the
same job definitions the deployment runs, without the ~12-16 s run-worker launch that
BENCHMARKS.md measures on its own). The state folder (embedded PostgreSQL on its own free
port, MLflow, Dagster) is `<--work>/state`, made afresh each run; the landing files are
`<--work>/landing`, written once and reused (the work folder is under the worktree, ignored
by git).

Memory and CPU time are sampled every second: the RSS of this process and its children
(dbt), and the PSS of the PostgreSQL server and its backends (PSS shares the server's shared
buffers among its processes instead of counting them once per backend). Peak = the largest
sum. The sampler's own CPU time is left out of the Python figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration.inprocess
from common import hold_work_folder, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2024-01-31"


@dataclass
class Sampler:
    """Summed memory of the run's processes, with its timeline for per-step peaks."""

    postmaster: int | None
    interval_s: float = 1.0
    # t, python MB, postgres MB, python CPU s, postgres CPU s (cumulative, reaped children in)
    samples: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process(os.getpid())
        pg = psutil.Process(self.postmaster) if self.postmaster else None
        while not self._stop.is_set():
            python_tree = [me, *_children(me)]
            server_tree = [pg, *_children(pg)] if pg else []
            self.samples.append(
                (
                    time.time(),
                    sum(_rss(p) for p in python_tree) / 2**20,
                    sum(_pss(p) for p in server_tree) / 2**20,
                    # The sampler's own CPU (reading /proc) is not the month's: left out.
                    _cpu(me, python_tree) - time.thread_time(),
                    _cpu(pg, server_tree) if pg else 0.0,
                )
            )
            self._stop.wait(self.interval_s)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> tuple[float, float, float]:
        """(total, python, postgres) MB at the sample with the largest total in [start, end]."""
        window = [s for s in self.samples if start <= s[0] <= end] or [(0, 0.0, 0.0, 0, 0)]
        _, python, server, _, _ = max(window, key=lambda s: s[1] + s[2])
        return python + server, python, server

    def cpu(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds (python tree, postgres) used between the samples nearest start and end."""
        window = [s for s in self.samples if start <= s[0] <= end]
        if len(window) < 2:
            return 0.0, 0.0
        return window[-1][3] - window[0][3], window[-1][4] - window[0][4]


def _children(proc: psutil.Process) -> list[psutil.Process]:
    with suppress(psutil.Error):
        return proc.children(recursive=True)
    return []


def _rss(proc: psutil.Process) -> int:
    with suppress(psutil.Error):
        return proc.memory_info().rss
    return 0


def _cpu(root: psutil.Process, tree: list[psutil.Process]) -> float:
    """CPU seconds of the live processes of `tree` plus the children `root` has reaped."""
    total = 0.0
    with suppress(psutil.Error):
        times = root.cpu_times()
        total += times.children_user + times.children_system
    for proc in tree:
        with suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _pss(proc: psutil.Process) -> int:
    with suppress(psutil.Error):
        return proc.memory_full_info().pss
    return 0


def generate(landing: Path, users: int) -> float:
    """The month's landing files by the CLI, in its own process; returns wall seconds."""
    if list(landing.glob(f"{AS_OF}/*.json")):
        print(f"landing: reusing {landing / AS_OF}")
        return 0.0
    started = time.perf_counter()
    command = ["demo-data", "--users", str(users), "--months", "1", "--out", str(landing)]
    subprocess.run([str(ROOT / ".venv/bin/streamflow"), *command], check=True)
    seconds = time.perf_counter() - started
    print(f"landing: {users:,} users written in {seconds:.1f} s")
    return seconds


def step_times(instance, run_id: str) -> list[tuple[str, float, float, str]]:
    """(step, start, end, outcome) per step of the run, from its event log."""
    import dagster as dg

    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            ends[event.step_key] = (record.timestamp, event.event_type_value)
    steps = [(k, starts[k], *ends[k]) for k in starts if k in ends]
    return sorted(steps, key=lambda s: s[1])


def run_graph(home: Path, landing: Path, log_file: Path) -> None:
    os.environ["STREAMFLOW_HOME"] = str(home)
    os.environ["STREAMFLOW_LANDING_DIR"] = str(landing)
    os.environ.pop("STREAMFLOW_DATABASE_URL", None)
    import dagster as dg

    from streamflow_dagster.definitions import build_definitions
    from streamflow_dagster.defs.jobs import MONTHLY_JOB, SETUP_JOB
    from streamflow_dagster.platform.db import embedded_server, start_warehouse
    from streamflow_dagster.platform.settings import load_settings
    from tests.integration.inprocess import run_months, run_setup

    url = start_warehouse()
    postmaster = embedded_server(load_settings()).status().pid
    print(f"warehouse: {url.rsplit('@', 1)[-1]} (postmaster pid {postmaster})")
    defs = build_definitions()
    sampler = Sampler(postmaster)
    sampler.start()
    try:
        with dg.instance_for_test() as instance:
            started = time.time()
            setup = run_setup(defs, SETUP_JOB, instance, log_file)
            assert setup.success, "setup job failed: see " + str(log_file)
            month_started = time.time()
            [month] = run_months(defs, MONTHLY_JOB, [AS_OF], instance, log_file=log_file)
            ended = time.time()
            steps = step_times(instance, month.run_id)
    finally:
        sampler.stop()
    print(f"\nsetup job (Feast apply): {month_started - started:.1f} s")
    print(
        f"{'step':<24} {'seconds':>8} {'cpu py':>7} {'cpu pg':>7} {'peak MB':>8} {'python':>7} "
        f"{'pg':>6}"
    )
    for key, start, end, outcome in steps:
        total, python, server = sampler.peak(start, end)
        cpu_python, cpu_server = sampler.cpu(start, end)
        flag = "" if outcome == "STEP_SUCCESS" else f"  {outcome}"
        print(
            f"{key:<24} {end - start:8.1f} {cpu_python:7.1f} {cpu_server:7.1f} {total:8,.0f} "
            f"{python:7,.0f} {server:6,.0f}{flag}"
        )
    if steps:
        print(
            f"before the first step {steps[0][1] - month_started:.1f} s (run start, resources), "
            f"after the last {ended - steps[-1][2]:.1f} s"
        )
    total, python, server = sampler.peak()
    cpu_python, cpu_server = sampler.cpu(month_started, ended)
    print(
        f"\nmonth {AS_OF}: {'ok' if month.success else 'FAILED'}, run "
        f"{ended - month_started:.1f} s (steps {sum(e - s for _, s, e, _ in steps):.1f} s), "
        f"with setup {ended - started:.1f} s; CPU {cpu_python:.1f} s python tree + "
        f"{cpu_server:.1f} s PostgreSQL"
    )
    print(
        f"peak memory: {total:,.0f} MB (python tree RSS {python:,.0f} MB + PostgreSQL PSS "
        f"{server:,.0f} MB at that moment)"
    )
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"maxrss: this process {self_mb:,.0f} MB, largest child {child_mb:,.0f} MB")
    for line in [*month.failures, *month.failed_checks, *month.notes]:
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-work" / "million")
    args = parser.parse_args()
    work = hold_work_folder(args.work, "bench_million.py")
    home, landing = work / "state", work / f"landing-{args.users}"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    print(f"state folder: {home}")
    generate(landing, args.users)
    try:
        run_graph(home, landing, home / "run.log")
    finally:
        from streamflow_dagster.platform.db import embedded_server
        from streamflow_dagster.platform.settings import load_settings

        embedded_server(load_settings()).stop()
        print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
