"""StreamFlow's dbt resource skips dagster-dbt's `dbt --version` process and in-process
adapter, and stays what it claims: the executable's own version, no adapter."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from dagster_dbt import DbtCliResource

from streamflow_dagster.defs.dbt import with_profiles_dir
from streamflow_dagster.defs.dbt_project import DBT_EXECUTABLE, DBT_PROJECT, StreamflowDbtCli


def test_the_members_it_replaces_still_exist_in_dagster_dbt():
    """An upgrade that renames them would silently bring the cost back: fail here instead."""
    assert "_cli_version" in DbtCliResource.__dict__
    assert "_initialize_dbt_core_adapter" in DbtCliResource.__dict__


def test_its_version_is_the_executables_and_it_holds_no_adapter(tmp_path: Path):
    dbt = StreamflowDbtCli(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE)
    printed = subprocess.run(
        [DBT_EXECUTABLE, "--version"], capture_output=True, text=True, check=True
    ).stdout
    core = re.search(r"(\d+\.\d+\.\d+)", printed)
    assert core is not None and str(dbt._cli_version) == core.group(1)
    assert dbt._initialize_dbt_core_adapter(["build"]) is None
    (tmp_path / "profiles.yml").write_text("streamflow: {}\n")
    assert type(with_profiles_dir(dbt, tmp_path)) is StreamflowDbtCli
