"""Landing ingestion + dbt for one month, through the real Dagster assets.

    .venv/bin/python bench/bench_foundation.py --users 7000 1000000

Each size gets its own state folder (its own embedded PostgreSQL). Prints wall seconds,
rows/s and peak memory (this process and its children, the dbt subprocess included; the
PostgreSQL server is a separate daemon, not counted).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, measured  # noqa: E402

AS_OF = "2024-01-31"


def run_size(users: int, work: Path) -> dict:
    os.environ["STREAMFLOW_HOME"] = str(work / "home")
    import dagster as dg

    from streamflow_dagster.definitions import build_resources
    from streamflow_dagster.defs.dbt import dbt_models
    from streamflow_dagster.defs.landing import landing_ingestion
    from streamflow_dagster.defs.resources import LandingResource, WarehouseResource
    from streamflow_dagster.landing.demo_data import generate_landing
    from streamflow_dagster.platform.db import start_warehouse

    landing = work / "landing"
    generate_landing(landing, users=users, months=1, seed=1)
    url = start_warehouse()
    resources = {
        **build_resources(),
        "warehouse": WarehouseResource(database_url=url),
        "landing": LandingResource(path=str(landing)),
    }
    rows = sum(f.read_bytes().count(b"\n") - 1 for f in (landing / AS_OF).glob("*.csv"))
    figures = {"users": users, "landing_rows": rows}
    with dg.instance_for_test() as instance:
        for name, assets in (("ingestion", [landing_ingestion]), ("dbt", [dbt_models])):
            with (
                measured() as m,
                open(work / "dagster.log", "a") as log,
                redirect_stdout(log),
                redirect_stderr(log),
            ):
                result = dg.materialize(
                    assets,
                    partition_key=AS_OF,
                    instance=instance,
                    resources=resources,
                    selection=assets,
                )
            assert result.success, name
            figures[f"{name}_s"] = m.seconds
            figures[f"{name}_peak_mb"] = m.peak_rss_mb
    figures["total_s"] = figures["ingestion_s"] + figures["dbt_s"]
    figures["rows_per_s"] = rows / figures["total_s"]
    figures["peak_mb"] = max(figures["ingestion_peak_mb"], figures["dbt_peak_mb"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[7000, 1_000_000])
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for users in args.users:
        with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp:
            f = run_size(users, Path(tmp))
            from streamflow_dagster.platform.db import embedded_server
            from streamflow_dagster.platform.settings import load_settings

            embedded_server(load_settings()).stop()
        print(
            f"users={users:>9,}  landing rows={f['landing_rows']:>9,}  "
            f"ingestion {f['ingestion_s']:6.1f} s  dbt {f['dbt_s']:6.1f} s  "
            f"total {f['total_s']:6.1f} s  {f['rows_per_s']:>9,.0f} rows/s  "
            f"peak {f['peak_mb']:,.0f} MB (ingestion {f['ingestion_peak_mb']:,.0f}, "
            f"dbt {f['dbt_peak_mb']:,.0f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
