"""The Dagster instance under $STREAMFLOW_HOME/dagster: storage, run queue and pools."""

from __future__ import annotations

import fcntl
from pathlib import Path

# Two runs at a time fit two cores; pools serialise what must not overlap (dbt builds).
# dagster.yaml cannot name a pool's own limit (the UI or `dagster instance concurrency set`
# can): `default_limit` is the limit of every pool, and the one pool is dbt_warehouse.
DAGSTER_YAML = """\
# Written by streamflow; edit freely, it is not overwritten once present.
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    # Every pool's limit; the only pool is dbt_warehouse (dbt builds, one at a time).
    default_limit: 1
telemetry:
  enabled: false
"""


def init_instance(home: Path) -> Path:
    """Write dagster.yaml if missing and create the instance's storage, once.

    Processes that open a brand-new instance at the same moment race on its schema
    migrations; the first one creates it under a file lock, the others find it ready.
    """
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(DAGSTER_YAML)
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)):
            pass
    return home
