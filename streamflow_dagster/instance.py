"""The Dagster instance under $STREAMFLOW_HOME/dagster: storage, run queue and pools."""

from __future__ import annotations

import os
from pathlib import Path

from .settings import Settings

# Two runs at a time fit two cores; pools serialise what must not overlap (dbt builds).
DAGSTER_YAML = """\
# Written by streamflow; edit freely, it is not overwritten once present.
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at the state folder (unless set) and give it a dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home
