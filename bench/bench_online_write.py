"""Where the online_features step's PostgreSQL time goes, one month of N users (issue 11).

    nice -n 5 .venv/bin/python bench/bench_online_write.py --users 1000000 [--repeat 2]

The month's landing files (`streamflow demo-data --months 1`, reused from bench_million's
folder layout under --work), then on a fresh state folder (its own embedded PostgreSQL on a
free port, with pg_stat_statements loaded) the setup job and the monthly job's assets before
online_features (landing, dbt), in-process (tests/integration/inprocess.py). Then the
online_features asset alone, once into the empty online tables (as in the month's run) and
--repeat times more (the same month written again: what a re-run or the next month costs).

For every online_features run: wall seconds, CPU seconds of the Python process and of the
PostgreSQL server split by process kind (client backends, parallel workers, autovacuum,
checkpointer and WAL writer...), and the statements that used the most time according to
pg_stat_statements (reset before each run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from collections import defaultdict
from contextlib import suppress
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration.inprocess
from bench_million import AS_OF, generate  # noqa: E402
from common import hold_work_folder, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOP_STATEMENTS = 12
BENCH_JOB = "bench_online_write"
ONLINE_JOB = "bench_online_only"


class ServerCpu:
    """CPU seconds of the server's processes by kind, from their process titles.

    Every process seen is sampled every half second and its last figure kept, so a backend
    that exits between samples loses at most its last half second.
    """

    def __init__(self, postmaster: int, interval_s: float = 0.5):
        self.postmaster = psutil.Process(postmaster)
        self.interval_s = interval_s
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServerCpu:
        self._sample()
        self.start = dict(self.last)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        for proc in [self.postmaster, *self.postmaster.children(recursive=True)]:
            with suppress(psutil.Error):
                times = proc.cpu_times()
                self.last[proc.pid] = (_kind(proc), times.user + times.system)

    def by_kind(self) -> dict[str, float]:
        used: dict[str, float] = defaultdict(float)
        for pid, (kind, cpu) in self.last.items():
            used[kind] += cpu - self.start.get(pid, (kind, 0.0))[1]
        return dict(sorted(used.items(), key=lambda item: -item[1]))


def _kind(proc: psutil.Process) -> str:
    title = " ".join(proc.cmdline())
    if not title.startswith("postgres:"):
        return "postmaster"
    words = title.removeprefix("postgres:").split()
    if "autovacuum" in title:
        return "autovacuum worker"
    if "parallel worker" in title:
        return "parallel worker"
    if len(words) >= 2 and "(" in title:  # "user database host(port) STATE"
        return "client backends"
    return " ".join(words[:2])


def run(work: Path, users: int, repeat: int, reuse: bool) -> None:
    home, landing = work / "state", work / f"landing-{users}"
    if home.exists() and not reuse:
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    generate(landing, users)
    os.environ["STREAMFLOW_HOME"] = str(home)
    os.environ["STREAMFLOW_LANDING_DIR"] = str(landing)
    os.environ.pop("STREAMFLOW_DATABASE_URL", None)
    from streamflow_dagster.platform.db import embedded_server
    from streamflow_dagster.platform.settings import load_settings

    try:
        _run_graph(home, repeat, reuse)
    finally:
        embedded_server(load_settings()).stop()
        print(f"load average at the end {os.getloadavg()}")


def _start_server_with_statements() -> tuple[str, int]:
    """The embedded server, restarted once with pg_stat_statements preloaded."""
    import psycopg

    from streamflow_dagster.platform.db import embedded_server, start_warehouse
    from streamflow_dagster.platform.settings import load_settings

    url = start_warehouse()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter system set shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("alter system set pg_stat_statements.max = 10000")
    embedded_server(load_settings()).stop()
    url = start_warehouse()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create extension if not exists pg_stat_statements")
    return url, embedded_server(load_settings()).status().pid


def _run_graph(home: Path, repeat: int, reuse: bool) -> None:
    import dagster as dg

    from streamflow_dagster.definitions import build_definitions
    from streamflow_dagster.defs.jobs import MONTH_ASSETS, SETUP_JOB
    from tests.integration.inprocess import run_months, run_setup

    url, postmaster = _start_server_with_statements()
    print(f"warehouse: {url.rsplit('@', 1)[-1]} (postmaster pid {postmaster})")
    online = dg.AssetSelection.assets("online_features")
    defs = dg.Definitions.merge(
        build_definitions(),
        dg.Definitions(
            jobs=[
                dg.define_asset_job(
                    BENCH_JOB,
                    # The labels mart too: the marts' dbt tests read it.
                    selection=(online | dg.AssetSelection.assets("churn_labels"))
                    .upstream()
                    .required_multi_asset_neighbors()
                    - online
                    & MONTH_ASSETS,
                ),
                dg.define_asset_job(ONLINE_JOB, selection=online),
            ]
        ),
    )
    log_file = home / "run.log"
    with dg.instance_for_test() as instance:
        if not reuse:
            assert run_setup(defs, SETUP_JOB, instance, log_file).success, f"see {log_file}"
            [month] = run_months(defs, BENCH_JOB, [AS_OF], instance, log_file=log_file)
            assert month.success, f"{month.failures} {month.failed_checks}: see {log_file}"
            _print_steps(instance, month.run_id)
        for number in range(1 if reuse else 0, repeat + 1):
            title = (
                "first write (empty online tables, marts just built)"
                if not number
                else (f"the same month again ({number})")
            )
            with _measured(url, postmaster, f"online_features: {title}"):
                [again] = run_months(defs, ONLINE_JOB, [AS_OF], instance, log_file=log_file)
            assert again.success, f"{again.failures} {again.failed_checks}: see {log_file}"
            _print_steps(instance, again.run_id)


class _measured:
    """Statements and server CPU of one run of online_features alone."""

    def __init__(self, url: str, postmaster: int, title: str):
        self.url, self.postmaster, self.title = url, postmaster, title

    def __enter__(self):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("select pg_stat_statements_reset()")
        print(f"\n== {self.title}; load average {os.getloadavg()}")
        self.cpu = ServerCpu(self.postmaster).__enter__()
        self.started = time.perf_counter()
        self.python = time.process_time()

    def __exit__(self, *exc) -> None:
        self.cpu.__exit__(*exc)
        print(
            f"run {time.perf_counter() - self.started:.1f} s, python CPU "
            f"{time.process_time() - self.python:.1f} s (this process), load average "
            f"{os.getloadavg()}"
        )
        kinds = self.cpu.by_kind()
        print(
            f"PostgreSQL CPU {sum(kinds.values()):.1f} s: "
            + ", ".join(f"{kind} {cpu:.1f}" for kind, cpu in kinds.items() if cpu >= 0.05)
        )
        _print_statements(self.url)


def _print_statements(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select total_exec_time / 1000, calls, rows, "
            "shared_blks_hit + shared_blks_read, temp_blks_written, "
            "regexp_replace(query, '\\s+', ' ', 'g') from pg_stat_statements "
            "order by total_exec_time desc limit %s",
            (TOP_STATEMENTS,),
        ).fetchall()
    print(f"{'exec s':>8} {'calls':>6} {'rows':>10} {'blocks':>10} {'tmp blks':>9}  statement")
    for seconds, calls, count, blocks, temp, query in rows:
        print(f"{seconds:8.1f} {calls:6} {count:10,} {blocks:10,} {temp:9,}  {query[:260]}")


def _print_steps(instance, run_id: str) -> None:
    from bench_million import step_times

    for key, start, end, outcome in step_times(instance, run_id):
        flag = "" if outcome == "STEP_SUCCESS" else f"  {outcome}"
        print(f"  step {key:<24} {end - start:8.1f} s{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="online_features runs after")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-work" / "online1m")
    parser.add_argument(
        "--reuse-state",
        action="store_true",
        help="keep the state of the last run (marts and a month online): online_features only",
    )
    args = parser.parse_args()
    work = hold_work_folder(args.work, "benchmark")
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    run(work, args.users, args.repeat, args.reuse_state)


if __name__ == "__main__":
    main()
