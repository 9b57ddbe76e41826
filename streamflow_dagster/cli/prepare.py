"""What a process needs before it loads the Dagster definitions: the instance and the manifest.

`streamflow run`, `demo` and `docs` call `prepare_code_location()`; `make dev` runs this module
(`python -m streamflow_dagster.cli.prepare`) before `dagster dev`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..platform.settings import Settings, load_settings


def use_dagster_home(settings: Settings) -> Path:
    """Point this process's DAGSTER_HOME at the state folder (unless set) and make the instance
    ready: DagsterInstance.get() and the processes started from here read it."""
    from ..platform.instance import init_instance, storage_env

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    os.environ.update(storage_env(settings))  # this process and the ones it starts
    return init_instance(home, settings)


def prepare_code_location(settings: Settings) -> Path:
    """The Dagster instance ready and the dbt manifest parsed if stale; the instance folder."""
    from ..defs.dbt_project import prepare_manifest

    home = use_dagster_home(settings)
    prepare_manifest()
    return home


if __name__ == "__main__":
    print(f"Dagster instance: {prepare_code_location(load_settings())}")
