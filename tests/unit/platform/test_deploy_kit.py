"""deploy/: the compose file, the Helm values and the Kubernetes manifests parse, and every
command they run is an installed CLI entry point whose arguments that CLI accepts.

The commands are parsed by the real click commands (`make_context`: options and types checked,
nothing run). The code server, daemon and webserver commands must be the ones
`streamflow deploy start` starts as processes (platform/deployment.py), which the deployment
tests run: compared option by option, only hosts, ports and paths may differ.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

import click
import pytest
import yaml

from streamflow_dagster.platform import deployment
from streamflow_dagster.platform.instance import DBT_POOL
from streamflow_dagster.platform.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
K8S_SERVICES = DEPLOY / "helm" / "streamflow-services.yaml"
# Where they may legitimately differ from the local deployment's processes.
PLACE_PARAMS = {"host", "port", "working_directory", "workspace"}
DEFINITIONS = "streamflow_dagster.definitions"


def substituted(value: str) -> str:
    """Compose's ${VAR:?msg} / ${VAR:-default} and Kubernetes' $(VAR) as plain values."""
    value = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", value)
    value = re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", r"placeholder-\1", value)
    return re.sub(r"\$\((\w+)\)", r"placeholder-\1", value)


def click_command(executable: str) -> click.Command:
    scripts = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
    assert executable in scripts, f"{executable} is not an installed console script"
    loaded = scripts[executable].load()
    if isinstance(loaded, click.Command):
        return loaded
    # dagster's and dagster-webserver's entry points are functions calling the module's `cli`.
    cli = getattr(sys.modules[loaded.__module__], "cli", None)
    assert isinstance(cli, click.Command), f"no click command behind {executable}"
    return cli


def parse(argv: list[str], mounts: dict[str, str] | None = None) -> tuple[list[str], dict]:
    """(command path, parameters) as the real CLI parses `argv`; a bad option raises. `mounts`:
    container path -> file here (compose's bind mounts), for options that must name a file."""
    argv = [(mounts or {}).get(a, a) for a in (substituted(str(a)) for a in argv)]
    executable, args = Path(argv[0]).name, argv[1:]
    if executable in ("python", "python3"):
        assert args[0] == "-m" and importlib.util.find_spec(args[1]), argv
        return [executable, "-m", args[1]], {}
    command, path = click_command(executable), [executable]
    while isinstance(command, click.Group):
        name = args.pop(0)
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"{' '.join(path)} has no subcommand {name!r}"
        command = sub
        path.append(name)
    context = command.make_context(" ".join(path), args)
    return path, dict(context.params)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def mounts(service: dict) -> dict[str, str]:
    """The service's bind mounts of files in deploy/: container path -> path here."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = str(DEPLOY / source)
    return found


def streamflow_services(spec: dict) -> dict[str, dict]:
    """The compose services that run the StreamFlow image (the others are upstream images)."""
    return {
        name: service
        for name, service in spec["services"].items()
        if "STREAMFLOW_IMAGE" in str(service.get("image", ""))
    }


@pytest.fixture(scope="module")
def local_processes(tmp_path_factory) -> dict[str, list[str]]:
    """The argv `streamflow deploy start --ui` gives each process, recorded, nothing started."""
    recorded: dict[str, list[str]] = {}

    def spawn(settings, name, args, port):
        recorded[name] = args
        return deployment.ProcessStatus(name, 1, True, port, Path("/dev/null"))

    home = tmp_path_factory.mktemp("home")
    settings = Settings(
        home=home, landing_dir=home / "landing", database_url=None, mlflow_tracking_uri=None
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(deployment, "_spawn", spawn)
    patch.setattr(deployment, "_running", lambda settings, name: None)
    patch.setattr(deployment, "_wait_for_code_server", lambda settings, proc: None)
    try:
        deployment._start_locked(settings, webserver_port=3000, celery_workers=None)
    finally:
        patch.undo()
    return recorded


def test_compose_parses_and_runs_the_whole_topology():
    spec = compose()
    assert {
        "postgres",
        "redis",
        "s3",
        "mlflow",
        "init",
        "code-server",
        "daemon",
        "webserver",
        "api",
    } <= set(spec["services"])
    assert set(streamflow_services(spec)) >= {"mlflow", "code-server", "daemon", "webserver", "api"}


def test_every_compose_command_is_an_entry_point_the_cli_accepts():
    for name, service in streamflow_services(compose()).items():
        assert "command" in service, f"service {name} runs no command"
        path, _ = parse(service["command"], mounts(service))
        assert path, name


@pytest.mark.parametrize(
    ("service", "process"),
    [
        ("code-server", deployment.CODE_SERVER),
        ("daemon", deployment.DAEMON),
        ("webserver", deployment.WEBSERVER),
    ],
)
def test_compose_runs_what_the_local_deployment_runs(service, process, local_processes):
    spec = compose()["services"][service]
    ours_path, ours = parse(spec["command"], mounts(spec))
    local_path, local = parse(local_processes[process])
    assert ours_path == local_path
    differ = {
        key
        for key in set(ours) | set(local)
        if key not in PLACE_PARAMS and ours.get(key) != local.get(key)
    }
    assert not differ, {key: (ours.get(key), local.get(key)) for key in differ}


def test_compose_wires_the_services_together():
    spec = compose()
    services = spec["services"]
    environment = services["code-server"]["environment"]
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "@postgres:5432/streamflow" in environment["STREAMFLOW_DATABASE_URL"]
    assert "@postgres:5432/dagster" in environment["STREAMFLOW_DAGSTER_STORAGE_URL"]
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    _, code_server = parse(services["code-server"]["command"])
    assert (server["host"], server["port"]) == ("code-server", code_server["port"])
    assert server["location_name"] == deployment.LOCATION_NAME
    # Run monitoring reads the run workers' pids: the daemon sees the code server's processes.
    assert services["daemon"]["pid"] == "service:code-server"
    # The MLflow server is `streamflow mlflow-server`, as the server-mode test runs it: its
    # backend is the database `mlflow` on the warehouse's server, artifacts proxied to S3.
    path, mlflow = parse(services["mlflow"]["command"])
    assert path == ["streamflow", "mlflow-server"]
    assert mlflow["artifacts_destination"].startswith("s3://")
    assert "mlflow" in mlflow["allowed_hosts"].split(",")
    mlflow_env = services["mlflow"]["environment"]
    assert "@postgres:5432/" in mlflow_env["STREAMFLOW_DATABASE_URL"]
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:9000"
    init_sql = (DEPLOY / "postgres" / "init.sql").read_text().lower()
    assert "create database mlflow" in init_sql


def test_helm_values_run_the_streamflow_code_location():
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["runLauncher"]["type"] in ("K8sRunLauncher", "CeleryK8sRunLauncher")
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert location["name"] == deployment.LOCATION_NAME
    path, params = parse(["dagster", "api", "grpc", *location["dagsterApiGrpcArgs"]])
    assert path == ["dagster", "api", "grpc"]
    assert params["module_name"] in (DEFINITIONS, (DEFINITIONS,))
    # The local instance's concurrency: every pool (dbt_warehouse) one step at a time.
    assert values["concurrency"]["pools"] == {"defaultLimit": 1, "granularity": "op"}
    assert DBT_POOL == "dbt_warehouse"


def test_kubernetes_services_run_streamflow_commands():
    documents = [d for d in yaml.safe_load_all(K8S_SERVICES.read_text()) if d]
    commands = {
        container["name"]: container["command"]
        for d in documents
        if d["kind"] == "Deployment"
        for container in d["spec"]["template"]["spec"]["containers"]
    }
    assert set(commands) == {"mlflow", "api"}
    assert parse(commands["api"])[0] == ["streamflow", "serve"]
    assert parse(commands["mlflow"])[0] == ["streamflow", "mlflow-server"]
