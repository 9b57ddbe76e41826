"""What durable commits cost on the embedded server: synchronous_commit on (the platform's
setting since issue 15) against off (before it).

    .venv/bin/python bench/bench_durability.py --users 7000 --rounds 2

For each setting, in alternating rounds, a fresh embedded server: one demo month through the
real `landing_ingestion` and `dbt_models` assets (bench_foundation's run), then 2,000 one-row
commits (the shape of Dagster's event log and the prediction log writes), timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_foundation import run_size  # noqa: E402
from common import machine  # noqa: E402

SMALL_COMMITS = 2000


def one_round(setting: str, users: int) -> dict:
    from streamflow_dagster.platform import embedded_pg
    from streamflow_dagster.platform.db import embedded_server, warehouse_url
    from streamflow_dagster.platform.settings import load_settings

    embedded_pg.START_OPTIONS["synchronous_commit"] = setting
    with tempfile.TemporaryDirectory(prefix="sf-durable-") as tmp:
        figures = run_size(users, Path(tmp))
        import psycopg

        with psycopg.connect(warehouse_url(), autocommit=True) as conn:
            assert conn.execute("show synchronous_commit").fetchone()[0] == setting
            conn.execute("create table bench_commits (id int, at timestamptz default now())")
            started = time.perf_counter()
            for i in range(SMALL_COMMITS):
                conn.execute("insert into bench_commits (id) values (%s)", (i,))
            figures["small_commits_s"] = time.perf_counter() - started
        embedded_server(load_settings()).stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=7000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict]] = {"on": [], "off": []}
    for _ in range(args.rounds):
        for setting in ("off", "on"):
            figures = one_round(setting, args.users)
            results[setting].append(figures)
            print(
                f"synchronous_commit={setting:<3}  ingestion {figures['ingestion_s']:5.1f} s  "
                f"dbt {figures['dbt_s']:5.1f} s  total {figures['total_s']:5.1f} s  "
                f"{SMALL_COMMITS} one-row commits {figures['small_commits_s']:5.2f} s "
                f"({1000 * figures['small_commits_s'] / SMALL_COMMITS:.2f} ms each)",
                flush=True,
            )
    for setting, rounds in results.items():
        total = statistics.median(r["total_s"] for r in rounds)
        small = statistics.median(r["small_commits_s"] for r in rounds)
        print(f"median {setting:<3}: month {total:.1f} s, {SMALL_COMMITS} commits {small:.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
