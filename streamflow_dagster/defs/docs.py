"""dbt docs: the project's models, columns and lineage, with the live warehouse's catalog."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import dagster as dg

from ..platform.settings import DBT_PROJECT_DIR, load_settings
from .dbt_project import DBT_EXECUTABLE
from .resources import WarehouseResource

DOCS_GROUP = "docs"
# `streamflow docs` serves the folder here by default (dbt's own docs port is 8080, which
# the Dagster UI's neighbours often take).
DOCS_PORT = 8580
DOCS_URL = f"http://127.0.0.1:{DOCS_PORT}"
DOCS_FILES = ("index.html", "manifest.json", "catalog.json")
# What defines the docs: SQL, YAML (descriptions, tests, contracts) and doc blocks.
PROJECT_SUFFIXES = {".sql", ".yml", ".yaml", ".md", ".csv"}
GENERATED_DIRS = {"target", "logs", "dbt_packages"}


def dbt_project_hash(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """A digest of the dbt project's files: changes exactly when the docs would."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in project_dir.rglob("*")
        if p.is_file()
        and p.suffix in PROJECT_SUFFIXES
        and not GENERATED_DIRS & set(p.relative_to(project_dir).parts)
    )
    for path in files:
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def generate_docs(target: Path, connection_env: dict[str, str]) -> None:
    """`dbt docs generate` against the live warehouse into `target`; raises with dbt's output."""
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **connection_env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    done = subprocess.run(
        [DBT_EXECUTABLE, "docs", "generate", *project, "--target-path", str(target)],
        env=env,
        capture_output=True,
        text=True,
    )
    missing = [name for name in DOCS_FILES if not (target / name).is_file()]
    if done.returncode != 0 or missing:
        raise RuntimeError(
            f"dbt docs generate failed (exit {done.returncode}, missing {missing or 'nothing'}); "
            f"check the warehouse connection and the dbt project. dbt said:\n"
            f"{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )


class DocsConfig(dg.Config):
    output_dir: str | None = None  # default: $STREAMFLOW_HOME/dbt-docs


@dg.asset(
    name="dbt_docs",
    group_name=DOCS_GROUP,
    code_version=dbt_project_hash(),
    kinds={"dbt"},
)
def dbt_docs(
    context: dg.AssetExecutionContext, config: DocsConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """dbt docs site: models, columns, tests, lineage and the live catalog (`streamflow docs`)."""
    folder = Path(config.output_dir) if config.output_dir else load_settings().dbt_docs_dir
    context.log.info(f"dbt docs generate into {folder}")
    generate_docs(folder, warehouse.libpq_env())
    manifest = json.loads((folder / "manifest.json").read_text())
    catalog = json.loads((folder / "catalog.json").read_text())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(folder)),
            "url": dg.MetadataValue.url(DOCS_URL),
            "models": sum(n["resource_type"] == "model" for n in manifest["nodes"].values()),
            "catalog_relations": len(catalog["nodes"]) + len(catalog["sources"]),
            "dbt_project_hash": dbt_project_hash(),
            "serve": "streamflow docs --no-generate",
        }
    )
