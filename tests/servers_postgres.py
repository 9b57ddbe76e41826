"""A PostgreSQL server installed separately: Debian's `postgresql`, a cluster of its own.

The external-server tests point STREAMFLOW_DATABASE_URL here instead of the embedded server.
The cluster is a fresh one made with `initdb` in a temp folder (never the system-wide cluster
Debian may create), run by Debian's `postgres` system user (postgres refuses to run as root),
on a free loopback port, with password authentication only: the platform connects as an
ordinary role (CREATEDB, not a superuser), as it would to a managed server.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from tests.servers import apt_install, free_port, wait_for_port

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"  # made by Debian's postgresql-common
SUPERUSER = "postgres"


def debian_pg_bin() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb (installs the package when
    it is missing)."""
    apt_install("postgresql", binary=str(DEBIAN_PG_ROOT))
    versions = sorted(
        (p for p in DEBIAN_PG_ROOT.iterdir() if re.fullmatch(r"\d+", p.name)),
        key=lambda p: int(p.name),
    )
    found = [v / "bin" for v in versions if (v / "bin" / "initdb").exists()]
    if not found:
        raise RuntimeError(f"Debian's postgresql is installed but no initdb under {DEBIAN_PG_ROOT}")
    return found[-1]


class DebianPostgres:
    """A fresh cluster of Debian's PostgreSQL in a temp folder, with one password role.

    `url` is what a user would put in STREAMFLOW_DATABASE_URL: role `role` (password auth,
    CREATEDB so the platform can make its `dagster` and `mlflow` databases) owning `database`.
    """

    def __init__(self, role: str = "streamflow", database: str = "streamflow") -> None:
        self.role = role
        self.database = database
        self.password = secrets.token_urlsafe(12)
        self._superuser_password = secrets.token_urlsafe(12)
        self.port = 0
        self.bin: Path | None = None
        self.root: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "run" / "postgres.log"

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    def url_of(self, database: str) -> str:
        return (
            f"postgresql://{self.role}:{self.password}@127.0.0.1:{self.port}/{database}"
            "?sslmode=disable"
        )

    def superuser_url(self, database: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}:{self._superuser_password}@127.0.0.1:{self.port}/"
            f"{database}?sslmode=disable"
        )

    def _as_postgres(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["runuser", "-u", SYSTEM_USER, "--", *args],
            capture_output=True,
            text=True,
            cwd=self.root,
            **kwargs,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}"
            )
        return done

    def start(self) -> DebianPostgres:
        self.bin = debian_pg_bin()
        # /tmp, not pytest's private tmp_path: the postgres user must be able to enter it.
        self.root = Path(tempfile.mkdtemp(prefix="streamflow-debian-pg-"))
        os.chmod(self.root, 0o755)
        for sub in ("data", "run"):
            (self.root / sub).mkdir(mode=0o700)
            shutil.chown(self.root / sub, SYSTEM_USER, SYSTEM_USER)
        pwfile = self.root / "run" / "superuser.pw"
        pwfile.write_text(self._superuser_password + "\n")
        shutil.chown(pwfile, SYSTEM_USER, SYSTEM_USER)
        os.chmod(pwfile, 0o600)
        self._as_postgres(
            str(self.bin / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            timeout=300,
        )
        pwfile.unlink()
        self.port = free_port()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root / 'run'} -c max_connections=200 "
            "-c timezone=UTC"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "120",
            "start",
            timeout=180,
        )
        wait_for_port(self.port)
        with psycopg.connect(self.superuser_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create role {} login createdb password {}").format(
                    sql.Identifier(self.role), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(self.database), sql.Identifier(self.role)
                )
            )
        return self

    def databases(self) -> set[str]:
        with psycopg.connect(self.superuser_url(), autocommit=True) as conn:
            rows = conn.execute("select datname from pg_database").fetchall()
        return {name for (name,) in rows}

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._as_postgres(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "stop",
                timeout=120,
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> DebianPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
