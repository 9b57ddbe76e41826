"""The installed package, as an image or a user gets it: the wheel built from this checkout,
installed with its locked dependencies into a fresh virtualenv, then `streamflow --help` and a
one-month run from a folder outside the checkout, with the package's own embedded PostgreSQL,
Dagster deployment and MLflow, and nothing of the checkout on the way.

The commands are deploy/Dockerfile's (the test checks that they are; there is no Docker
here): `uv build --wheel`, `uv export --frozen` of uv.lock as constraints, `uv venv`, `uv pip
install -c constraints <wheel>`. uv installs from its cache in seconds, where `pip install .`
resolves and downloads for minutes (README gives the by-hand `pip install .` and its time).

As root, the package runs as a system user over a root-owned virtualenv, as the image runs as
USER streamflow: the package's own folder is read-only for the run, so anything that writes
there (dbt's target/ and logs/, .user.yml) fails the month. The venv's interpreter must then be
one that user can reach (this machine's pyenv lives under /root: Debian's python3.11 is used).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psycopg
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql

from streamflow_dagster.defs.docs import dbt_project_hash
from streamflow_dagster.features.registry import repo_code_version
from streamflow_dagster.ml.registry import AS_OF_TAG, PRODUCTION_ALIAS, alias_version
from streamflow_dagster.platform.embedded_pg import blocked_folders
from streamflow_dagster.platform.mlflow_store import backend_store_uri

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[3]
UV = str(Path(sys.executable).with_name("uv"))
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MONTH, USERS = "2024-01-31", 1000
RUN_AS = "streamflow_pkg"  # as root: the system user the installed package runs as
# deploy/Dockerfile's build and install steps, as run here (the paths are the test's own).
BUILD_WHEEL = ["uv", "build", "--wheel", "--out-dir"]
EXPORT_LOCK = ["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"]
MAKE_VENV = ["uv", "venv", "--python"]
INSTALL = ["uv", "pip", "install", "--python"]


def uv(step: list[str], *args: str, cwd: Path = ROOT) -> float:
    """One Dockerfile step with this checkout's uv; its wall seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [UV, *step[1:], *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started


def reachable_python(uid: int, gid: int) -> str:
    """A Python 3.11 whose folders user uid/gid can enter (the venv links to it)."""
    candidates = [os.path.realpath(sys._base_executable), "/usr/bin/python3.11"]
    for python in candidates:
        if Path(python).is_file() and not blocked_folders([Path(python).parent], uid, gid):
            return python
    pytest.fail(f"no Python 3.11 that uid {uid} can run among {candidates}")


def run_as_user() -> pwd.struct_passwd | None:
    """The system user to run the package as when the tests run as root (made if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", RUN_AS], check=True)
        return pwd.getpwnam(RUN_AS)


def package_files(package: Path) -> set[str]:
    return {
        str(p.relative_to(package))
        for p in package.rglob("*")
        if "__pycache__" not in p.parts and not p.is_dir()
    }


@pytest.fixture(scope="module")
def installed(server_home):
    """The wheel built and installed into a fresh venv; the environment to run it in."""
    base = server_home("package")
    base.chmod(0o711)  # the run's user (and the embedded server) pass through, no listing
    user = run_as_user()
    uid, gid = (user.pw_uid, user.pw_gid) if user else (os.getuid(), os.getgid())
    venv, dist, home, outside = (base / n for n in ("venv", "dist", "home", "elsewhere"))
    timings = {
        "build": uv(BUILD_WHEEL, str(dist)),
        "export": uv(EXPORT_LOCK, "--quiet", "-o", str(dist / "constraints.txt")),
        "venv": uv(MAKE_VENV, reachable_python(uid, gid), str(venv)),
    }
    (wheel,) = dist.glob("streamflow-*.whl")
    timings["install"] = uv(
        INSTALL, str(venv / "bin" / "python"), "-c", str(dist / "constraints.txt"), str(wheel)
    )
    for folder in (home, outside):
        folder.mkdir()
        os.chown(folder, uid, gid)
    (package,) = venv.glob("lib/python3.11/site-packages/streamflow_dagster")
    if user is None:  # not root: read-only by its mode instead
        for path in [package, *package.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "STREAMFLOW_HOME": str(home),
    }

    def in_venv(program: str, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        """`program` of the venv, from a folder outside the checkout, as the run's user."""
        return subprocess.run(
            [str(venv / "bin" / program), *args],
            cwd=outside,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **({"user": uid, "group": gid, "extra_groups": []} if user else {}),
        )

    def streamflow(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        return in_venv("streamflow", *args, timeout=timeout)

    yield {
        "wheel": wheel,
        "venv": venv,
        "package": package,
        "home": home,
        "outside": outside,
        "streamflow": streamflow,
        "python": lambda *args: in_venv("python", *args, timeout=300),
        "timings": timings,
    }
    streamflow("deploy", "stop", timeout=300)
    streamflow("db", "stop", timeout=300)
    if user is None:  # writable again, so that the session's clean-up can remove it
        for path in [package, *package.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def test_the_dockerfile_runs_these_commands():
    dockerfile = " ".join(DOCKERFILE.read_text().replace("\\\n", " ").split())
    for step in (BUILD_WHEEL, EXPORT_LOCK, MAKE_VENV, INSTALL):
        assert " ".join(step) in dockerfile
    assert 'ENTRYPOINT ["streamflow"]' in dockerfile


def test_the_wheel_ships_the_projects_and_a_parsed_manifest(installed):
    bundled = "streamflow_dagster/bundled/"
    names = {
        n.removeprefix(bundled)
        for n in zipfile.ZipFile(installed["wheel"]).namelist()
        if n.startswith(bundled)
    }
    assert {"dbt_project/dbt_project.yml", "feature_repo/feature_store.yaml"} <= names
    assert "feature_repo/feature_views.py" in names
    shipped_models = {n for n in names if n.startswith("dbt_project/models/")}
    source_models = {
        f"dbt_project/{p.relative_to(ROOT / 'dbt_project')}"
        for p in (ROOT / "dbt_project" / "models").rglob("*")
        if p.is_file()
    }
    assert shipped_models == source_models
    # Generated state stays out: of dbt's output only the manifest, parsed by the build.
    assert {n for n in names if n.startswith("dbt_project/target/")} == {
        "dbt_project/target/manifest.json"
    }
    assert not any(
        part in {"logs", ".user.yml", "__pycache__", "data", "dbt_packages"}
        for n in names
        for part in n.split("/")[1:]
    )


def test_streamflow_help_from_the_installed_package(installed):
    shown = installed["streamflow"]("--help")
    assert shown.returncode == 0, shown.stderr
    assert "Commands:" in shown.stdout and "run" in shown.stdout


def test_a_month_runs_from_the_installed_package(installed):
    streamflow, home, venv, package = (
        installed[k] for k in ("streamflow", "home", "venv", "package")
    )
    where = installed["python"](
        "-c",
        "import json, streamflow_dagster as p\n"
        "from streamflow_dagster.platform import settings as s\n"
        "from streamflow_dagster.defs.docs import dbt_project_hash\n"
        "from streamflow_dagster.features.registry import repo_code_version\n"
        "print(json.dumps({'package': p.__file__, 'checkout': s.FROM_CHECKOUT,"
        " 'dbt': str(s.DBT_PROJECT_DIR), 'feast': str(s.FEATURE_REPO_DIR),"
        " 'dbt_hash': dbt_project_hash(), 'feast_hash': repo_code_version(s.FEATURE_REPO_DIR)}))",
    )
    assert where.returncode == 0, where.stderr
    found = json.loads(where.stdout)
    # Nothing of the checkout: the package, its dbt project and Feast repository in the venv.
    assert not found["checkout"]
    for key in ("package", "dbt", "feast"):
        assert Path(found[key]).is_relative_to(package), (key, found[key])
    # The same code versions as the checkout's: a deployment from the image sees no change.
    assert found["dbt_hash"] == dbt_project_hash(ROOT / "dbt_project")
    assert found["feast_hash"] == repo_code_version(ROOT / "feature_repo")

    before = package_files(package)
    made = streamflow(
        "demo-data", "--users", str(USERS), "--months", "1", "--out", str(home / "landing")
    )
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    ran = streamflow("run")
    run_seconds = time.monotonic() - started
    assert ran.returncode == 0, ran.stdout[-5000:] + ran.stderr[-5000:]
    assert f"{MONTH}: ok" in ran.stdout

    # The deployment's code server ran the venv's Python, in the state folder.
    code_server = json.loads((home / "deployment" / "code-server.json").read_text())
    cmdline = Path(f"/proc/{code_server['pid']}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].decode().startswith(str(venv))
    assert cmdline[cmdline.index(b"-d") + 1].decode() == str(home)

    url = streamflow("db", "url").stdout.strip()
    with psycopg.connect(url) as conn:
        marts = {
            table: conn.execute(
                sql.SQL("select count(*) from marts.{} where as_of = %s").format(
                    sql.Identifier(table)
                ),
                (MONTH,),
            ).fetchone()[0]
            for table in ("subscriptions_profile_snapshots", "usage_agg_30d_snapshots")
        }
    assert marts == {t: USERS for t in marts}
    client = MlflowClient(tracking_uri=backend_store_uri(url), registry_uri=backend_store_uri(url))
    production = alias_version(client, PRODUCTION_ALIAS)
    assert production is not None and production.tags[AS_OF_TAG] == MONTH

    # dbt's run artifacts went to the state folder; the package's folder was not written to.
    assert list((home / "dbt" / "target").glob("dbt_models-*/run_results.json"))
    assert package_files(package) == before
    timings = {k: f"{v:.0f} s" for k, v in installed["timings"].items()}
    print(f"\ninstalled package: {timings}, one month of {USERS} users in {run_seconds:.0f} s")
