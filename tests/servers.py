"""Servers the tests need beyond the embedded PostgreSQL, installed from the package registries.

Debian's packages (`redis-server`, `postgresql`) are installed by the test setup itself when
missing, as the browser test installs chromium: `apt_install` runs `apt-get update` once per
machine and then `apt-get install`. Nothing is downloaded from anywhere else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_APT_UPDATED = Path(tempfile.gettempdir()) / "streamflow-tests-apt-updated"


def apt_install(*packages: str, binary: str | None = None) -> None:
    """Install Debian `packages` unless `binary` (a program they provide) is already found."""
    if binary is not None and (shutil.which(binary) or Path(binary).exists()):
        return
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{binary or packages} is missing and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _APT_UPDATED.exists():
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        _APT_UPDATED.touch()
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
        timeout=900,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout_s} s"
                ) from None
            time.sleep(0.1)


class ServerProcess:
    """A server as a child process on a free loopback port, its log in `directory`.

    Subclasses say how to start it (`command(port)`), what it needs first (`prepare`), and how
    long it may take to listen."""

    log_name = "server.log"
    start_timeout_s = 30.0

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.port = 0
        self._proc: subprocess.Popen | None = None

    def prepare(self) -> None:
        """Install or check what the server needs (before a port is taken)."""

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def start(self):
        self.prepare()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._proc = subprocess.Popen(
            self.command(self.port),
            stdout=(self.directory / self.log_name).open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout_s=self.start_timeout_s)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RedisServer(ServerProcess):
    """A real `redis-server` (Debian's) on a free loopback port, its data in `directory`."""

    log_name = "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def prepare(self) -> None:
        apt_install("redis-server", binary="redis-server")

    def command(self, port: int) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
