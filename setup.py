"""Building the wheel ships the dbt project and the Feast repository inside the package.

dbt_project/ and feature_repo/ stay at the repository's top (DESIGN.md); an installed package
cannot see them there. So the build copies both into streamflow_dagster/bundled/ (without
dbt's and Feast's generated folders) and parses the dbt manifest into the copy: `dbt parse`
needs no database, and the installed package never has to write into its own folder.
platform/settings.py reads the checkout when there is one, the bundled copies otherwise.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = Path("streamflow_dagster") / "bundled"
# Each shipped folder, and what in it is generated state rather than source.
SHIPPED = {
    "dbt_project": {"target", "logs", "dbt_packages", ".user.yml"},
    "feature_repo": {"data"},
}
# dbt as a program, for the Python that runs this build (pyproject's build requirements).
DBT = [sys.executable, "-c", "import sys; from dbt.cli.main import cli; sys.exit(cli())"]


def _ignore(top: Path, generated: set[str]):
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        return skipped | (generated & set(names) if Path(folder) == top else set())

    return ignore


def parse_manifest(project: Path) -> None:
    """`dbt parse` of the copy; only manifest.json is kept, in the copy's target/."""
    dbt_args = runpy.run_path(str(ROOT / "streamflow_dagster" / "lib" / "dbt_args.py"))
    env = {
        **dbt_args["PARSE_ENV_DEFAULTS"],
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with tempfile.TemporaryDirectory(prefix="streamflow-build-dbt-") as scratch:
        target = Path(scratch) / "target"
        env["DBT_LOG_PATH"] = str(Path(scratch) / "logs")
        args = dbt_args["parse_args"](str(project), str(project), str(target))
        done = subprocess.run([*DBT, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0 or not (target / "manifest.json").is_file():
            raise RuntimeError(
                f"`dbt parse` of the shipped dbt project failed (exit {done.returncode}); "
                f"fix dbt_project/ (`make manifest` shows the same error). dbt said:\n"
                f"{done.stdout[-3000:]}{done.stderr[-2000:]}"
            )
        (project / "target").mkdir()
        shutil.copy2(target / "manifest.json", project / "target" / "manifest.json")


class BuildWithProjects(build_py):
    """build_py, then the shipped folders copied into the build and the manifest parsed."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the checkout itself
        bundle = Path(self.build_lib) / BUNDLE
        shutil.rmtree(bundle, ignore_errors=True)  # an earlier build's copy
        for name, generated in SHIPPED.items():
            source = ROOT / name
            if not source.is_dir():
                raise RuntimeError(f"{source} is missing: build from a full checkout or sdist")
            shutil.copytree(source, bundle / name, ignore=_ignore(source, generated))
        parse_manifest(bundle / "dbt_project")


setup(cmdclass={"build_py": BuildWithProjects})
