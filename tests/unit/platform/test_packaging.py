"""The wheel's build parses the dbt manifest with the dbt the package runs (pyproject, uv.lock)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"]}


def test_the_build_parses_with_the_locked_dbt():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = dict(r.split("==") for r in requires if "==" in r)
    locked = locked_versions()
    assert set(pinned) == {"dbt-core", "dbt-postgres"}
    # A relock that moves dbt must move the build's pins too (a manifest of another dbt).
    assert pinned == {name: locked[name] for name in pinned}
