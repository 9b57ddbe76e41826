"""The dbt project as Dagster loads it, and its manifest: parsed by an explicit step.

Importing the definitions never runs dbt. `prepare_manifest()` parses the project when the
manifest is missing or older than a project file; `streamflow run`, `streamflow demo`,
`streamflow docs`, `make dev` and the test session call it, and `dagster dev` does through
`prepare_if_dev()`. Anywhere else a missing or stale manifest is an error that says
what to run.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject, DbtProjectPreparer
from packaging.version import Version

from ..lib.dbt_args import PARSE_ENV_DEFAULTS, parse_args
from ..platform.settings import DBT_PROJECT_DIR, FROM_CHECKOUT

# The dbt installed beside this Python: a venv's bin folder need not be on PATH.
# Started through streamflow-dbt so that dbt dies with the run that started it (lib/dbt_child.py).
DBT_EXECUTABLE = str(Path(sys.executable).with_name("streamflow-dbt"))
# What defines the manifest: SQL, YAML and doc blocks outside dbt's own output folders.
MANIFEST_SOURCES = {".sql", ".yml", ".md"}
GENERATED_DIRS = {"target", "logs", "dbt_packages"}
PREPARE_COMMAND = "make manifest"


class StreamflowDbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two things it does before every dbt command that
    StreamFlow does not need (each month's run, and every test that builds, paid for them):

    - `dbt --version` in a new process, to learn the executable's version: DBT_EXECUTABLE is
      this environment's dbt-core (lib/dbt_child.py), so its version is the installed one.
      That process took 3-7 s on this machine (dbt's imports).
    - loading the dbt project, profile and macros in this process to hold a dbt adapter: the
      adapter serves only `fetch_row_counts()` / `fetch_column_metadata()`, which StreamFlow
      does not call (without it dagster-dbt skips them). About 3 CPU-s a command.

    Both are private members of dagster-dbt 0.29 (pinned below 0.30); tests/unit/defs
    asserts they still exist, so an upgrade that renames them fails a test instead of
    silently bringing the cost back.
    """

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


class ManifestNotReady(RuntimeError):
    """The dbt manifest is missing or older than the project."""


def stale_reason(project: DbtProject) -> str | None:
    """Why the manifest cannot be used as it is (missing, or a file newer), or None."""
    manifest = project.manifest_path
    if not manifest.exists():
        return f"{manifest} does not exist"
    if not FROM_CHECKOUT:
        # An installed package's project never changes, and its manifest was parsed when the
        # wheel was built; installers do not keep the files' times, so they prove nothing.
        return None
    built = manifest.stat().st_mtime
    for path in project.project_dir.rglob("*"):
        if path.suffix not in MANIFEST_SOURCES:
            continue
        if GENERATED_DIRS & set(path.relative_to(project.project_dir).parts):
            continue
        if path.stat().st_mtime > built:
            return f"{path} changed after {manifest} was written"
    return None


def parse_project(project: DbtProject) -> None:
    """`dbt parse` into the project's target folder, one process at a time.

    Several processes may prepare at once (a test session and a code server); a file lock
    makes one of them parse while the others wait and then find the manifest fresh.
    """
    target = project.manifest_path.parent  # DbtProject.target_path is relative
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stale_reason(project) is None:
            return
        env = {**PARSE_ENV_DEFAULTS, **os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        args = parse_args(str(project.project_dir), str(project.profiles_dir), str(target))
        subprocess.run([DBT_EXECUTABLE, *args], env=env, check=True)


DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def prepare_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """The manifest, parsed first when it is missing or older than a project file."""
    if stale_reason(project) is not None:
        parse_project(project)
    return project.manifest_path


def prepare_if_dev(project: DbtProject = DBT_PROJECT) -> None:
    """`DbtProject.prepare_if_dev()` with this module's parse: under `dagster dev` only, so an
    edited model shows on reload. (dagster-dbt's own preparer renders profiles.yml from this
    process's environment, which holds no connection.)"""
    if DbtProjectPreparer().using_dagster_dev():
        prepare_manifest(project)


def require_manifest(project: DbtProject = DBT_PROJECT) -> Path:
    """The manifest as it is; raises with what to run when it is missing or stale."""
    reason = stale_reason(project)
    if reason is not None:
        raise ManifestNotReady(
            f"The dbt manifest is not ready: {reason}. Parse the project with "
            f"`{PREPARE_COMMAND}` (or `dbt parse` in {project.project_dir}); `streamflow run` "
            "and `dagster dev` do it themselves."
        )
    return project.manifest_path
