"""The local Dagster deployment StreamFlow starts itself, as it starts its database.

Three processes, each with its pid file and log under $STREAMFLOW_HOME/deployment:
- the code server (`dagster code-server start`, gRPC) serving streamflow_dagster.definitions;
- the daemon (`dagster-daemon run`): run queue, run monitoring, sensors, schedules;
- on request, the webserver (`dagster-webserver`, the UI);
- under the Celery executor profile, the local Celery workers (platform/celery.py).
The daemon and the webserver load the generated workspace.yaml, which points at the code
server, so every run (CLI, sensor, schedule, UI) carries the same code-location origin.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import celery
from .instance import STORAGE_URL_ENV
from .settings import FROM_CHECKOUT, PROJECT_ROOT, Settings, load_executor_settings

LOCATION_NAME = "streamflow"
CODE_SERVER, DAEMON, WEBSERVER = "code-server", "daemon", "webserver"
PROCESSES = (CODE_SERVER, DAEMON, WEBSERVER)
CODE_SERVER_READY_S = 300  # loading the definitions imports dbt, Feast and MLflow
STOP_GRACE_S = 20
KILL_WAIT_S = 5  # after SIGKILL, until the kernel has ended the group's processes
# Dagster's gRPC calls give up after 60 s by default. Starting a run is one call that lasts
# until the run's new process is up (spawned, dagster imported, storage opened): it took 42 s
# and then over 60 s in CI with three test workers on two cores, and the queue failed that
# run ("DEADLINE_EXCEEDED"). The deployment's processes get this instead, unless set.
GRPC_TIMEOUT_ENV = "DAGSTER_GRPC_TIMEOUT_SECONDS"
GRPC_TIMEOUT_S = 300


class DeploymentError(RuntimeError):
    pass


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int | None
    running: bool
    port: int | None
    log: Path


def deployment_dir(settings: Settings) -> Path:
    return settings.home / "deployment"


def workspace_file(settings: Settings) -> Path:
    return deployment_dir(settings) / "workspace.yaml"


def _state_file(settings: Settings, name: str) -> Path:
    return deployment_dir(settings) / f"{name}.json"


def _log_file(settings: Settings, name: str) -> Path:
    return settings.logs_dir / f"{name}.log"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in {"Z", "X"}


def celery_config_file(settings: Settings) -> Path:
    return deployment_dir(settings) / "celery.yaml"


def _worker_names(settings: Settings) -> list[str]:
    """The Celery workers started here (a state file each), in the order they were numbered."""
    files = deployment_dir(settings).glob(f"{celery.WORKER_PREFIX}-*.json")
    return sorted((f.stem for f in files), key=lambda n: int(n.rsplit("-", 1)[1]))


def status(settings: Settings) -> list[ProcessStatus]:
    """Each process: its pid and port from its state file, and whether it still runs."""
    result = []
    for name in (*PROCESSES, *_worker_names(settings)):
        state_file = _state_file(settings, name)
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        pid = state.get("pid")
        result.append(
            ProcessStatus(
                name, pid, bool(pid) and _alive(pid), state.get("port"), _log_file(settings, name)
            )
        )
    return result


def _running(settings: Settings, name: str) -> ProcessStatus | None:
    return next((s for s in status(settings) if s.name == name and s.running), None)


def _environment(settings: Settings) -> dict[str, str]:
    env = {**os.environ, "STREAMFLOW_HOME": str(settings.home)}
    env["DAGSTER_HOME"] = os.environ.get("DAGSTER_HOME", str(settings.dagster_home))
    env.setdefault(GRPC_TIMEOUT_ENV, str(GRPC_TIMEOUT_S))
    if STORAGE_URL_ENV in os.environ:
        env[STORAGE_URL_ENV] = os.environ[STORAGE_URL_ENV]
    return env


def _working_dir(settings: Settings) -> Path:
    """The checkout (its package imports from there), or for an installed package the state
    folder: the package's own folder is no place for a process to work in."""
    return PROJECT_ROOT if FROM_CHECKOUT else settings.home


def _spawn(settings: Settings, name: str, args: list[str], port: int | None) -> ProcessStatus:
    """Start `args` in its own session (it outlives this command), output to its log."""
    log = _log_file(settings, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    deployment_dir(settings).mkdir(parents=True, exist_ok=True)
    env = _environment(settings)
    if name.startswith(celery.WORKER_PREFIX):
        env = celery.worker_env(env)
    with open(log, "a") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(args)}\n")
        out.flush()
        proc = subprocess.Popen(
            args,
            cwd=_working_dir(settings),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _state_file(settings, name).write_text(json.dumps({"pid": proc.pid, "port": port}))
    return ProcessStatus(name, proc.pid, True, port, log)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _write_workspace(settings: Settings, port: int) -> Path:
    path = workspace_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Generated by `streamflow deploy start`: the code server it started.\n"
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {port}\n"
        f"      location_name: {LOCATION_NAME}\n"
    )
    return path


def _wait_for_code_server(settings: Settings, proc: ProcessStatus) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=proc.port, host="127.0.0.1")
    deadline = time.monotonic() + CODE_SERVER_READY_S
    while time.monotonic() < deadline:
        if not _alive(proc.pid):
            raise DeploymentError(
                f"the code server exited while loading the definitions; see {proc.log}"
            )
        try:
            client.ping("")
            # Answering pings comes before the definitions are loaded: wait for those too.
            client.list_repositories()
            return
        except Exception:  # noqa: BLE001 - not up yet; the deadline bounds the wait
            time.sleep(1)
    raise DeploymentError(
        f"the code server did not answer in {CODE_SERVER_READY_S} s; see {proc.log}"
    )


def start(
    settings: Settings, webserver_port: int | None = None, celery_workers: int | None = None
) -> list[ProcessStatus]:
    """Start what is not running: code server, daemon, the webserver when given a port, and
    under the Celery profile `celery_workers` workers (default STREAMFLOW_CELERY_WORKERS).

    Commands started at the same moment (e.g. two `streamflow run`) take turns under a file
    lock: the first starts the processes, the next finds them running and uses them. The
    instance must be prepared first (cli/prepare.py: DAGSTER_HOME, storage, dbt manifest).
    """
    try:  # a bad executor profile stops here, named, not in the code server's log
        load_executor_settings()
    except ValueError as err:
        raise DeploymentError(str(err)) from None
    folder = deployment_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(settings, webserver_port, celery_workers)


def _start_locked(
    settings: Settings, webserver_port: int | None, celery_workers: int | None
) -> list[ProcessStatus]:
    code = _running(settings, CODE_SERVER)
    if code is None:
        port = _free_port()
        code = _spawn(
            settings,
            CODE_SERVER,
            [
                _bin("dagster"),
                "code-server",
                "start",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "streamflow_dagster.definitions",
                "-d",
                str(_working_dir(settings)),
                "--location-name",
                LOCATION_NAME,
            ],
            port,
        )
        _write_workspace(settings, port)
        _wait_for_code_server(settings, code)
    workspace = str(workspace_file(settings))
    if _running(settings, DAEMON) is None:
        _spawn(settings, DAEMON, [_bin("dagster-daemon"), "run", "-w", workspace], None)
    if webserver_port is not None and _running(settings, WEBSERVER) is None:
        _spawn(
            settings,
            WEBSERVER,
            [
                _bin("dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(webserver_port),
            ],
            webserver_port,
        )
    _start_celery_workers(settings, celery_workers)
    return status(settings)


def _start_celery_workers(settings: Settings, count: int | None) -> None:
    """Workers 1..count that are not running (none outside the Celery profile)."""
    try:
        executor = load_executor_settings()
    except ValueError as err:
        raise DeploymentError(str(err)) from None
    if not executor.celery:
        if count:
            raise DeploymentError(
                f"{count} Celery worker(s) asked for, but the executor is "
                f"{executor.executor!r}: set STREAMFLOW_EXECUTOR=celery and "
                "STREAMFLOW_CELERY_BROKER_URL"
            )
        return
    count = executor.celery_workers if count is None else count
    config = celery.write_worker_config(celery_config_file(settings), executor)
    for index in range(1, count + 1):
        name = celery.worker_name(index)
        if _running(settings, name) is None:
            _spawn(settings, name, celery.worker_args(config, name), None)


def stop(settings: Settings) -> list[str]:
    """Stop every running process of the deployment (webserver and daemon first)."""
    stopped = []
    for proc in reversed(status(settings)):
        # A group whose leader is gone may still hold a worker finishing its step.
        if proc.running or (proc.pid and _group_alive(proc.pid)):
            _terminate(proc.pid)
            stopped.append(proc.name)
        _state_file(settings, proc.name).unlink(missing_ok=True)
    return stopped


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (zombies of reaped parents count as gone)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            return True
    return False


def _terminate(pid: int) -> None:
    """SIGTERM to the process's group (its own session), SIGKILL after the grace time.

    The whole group is waited for, not only its leader: a Celery worker's `celery` process
    (child of `dagster-celery`) finishes its current step after its parent has exited.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _group_gone_within(pid, STOP_GRACE_S, poll=0.2):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    # SIGKILL is delivered asynchronously: a process can still show as running for a few
    # milliseconds after the call (seen once in the unit test). Wait until it is gone.
    _group_gone_within(pid, KILL_WAIT_S, poll=0.05)


def _group_gone_within(pid: int, seconds: float, poll: float) -> bool:
    """Wait up to `seconds` for the process group to end; whether it did."""
    deadline = time.monotonic() + seconds
    while _group_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
